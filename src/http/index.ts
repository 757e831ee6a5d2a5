import type { FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import helmet from '@fastify/helmet'
import cors from '@fastify/cors'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import secureJson from 'secure-json-parse'
import { AppError, databaseUnavailable, errorBody, toErrorResponse } from '../errors.js'
import { createValidatorCompiler } from './validation.js'
import { ErrorResponse } from './schemas.js'
import { documentRoute } from './openapi.js'

/** The API's version, in the OpenAPI document. */
export const API_VERSION = '1.0.0'

const apiTags = [
  { name: 'organizations', description: 'Organizations (tenants): created by administrators' },
  { name: 'sites', description: "An organization's sites" },
  { name: 'units', description: 'Refrigeration units: thresholds, state' },
  { name: 'devices', description: 'Sensor devices attached to units' },
  { name: 'api-keys', description: 'Device API keys for ingestion (owners)' },
  { name: 'alerts', description: 'Temperature excursion and offline alerts' },
  { name: 'ingestion', description: 'Readings from devices (x-api-key)' },
  { name: 'dashboard', description: 'The cached organization dashboard (x-cache: hit | miss | bypass)' },
  { name: 'reports', description: 'Compliance reports, always from the database' },
  { name: 'operations', description: 'Health and metrics (public)' }
]

/**
 * The security headers of a JSON API response, set in one call: what a browser needs to treat it as data (no
 * sniffing, no framing, no resources, no referrer, HTTPS only). helmet's full set is for HTML and runs a dozen
 * middlewares per request; it serves the page and /docs only (HTML_SECURITY).
 */
export const API_SECURITY_HEADERS = Object.freeze({
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains'
})
/** helmet's options for the HTML the service serves (the page, the API explorer at /docs). */
export const HTML_SECURITY = { contentSecurityPolicy: false, crossOriginResourcePolicy: false } as const

/** Routes answered with JSON: the API, health and metrics. */
const isApiRoute = (url: string) => url.startsWith('/api/') || url === '/health' || url.startsWith('/health/') || url === '/metrics'

// A NUL character escaped in JSON text (an odd number of backslashes before u0000): PostgreSQL cannot store it.
const escapedNul = /(?:^|[^\\])(?:\\\\)*\\u0000/

/**
 * The HTTP layer every route shares: validation (strict bodies, coercing query strings), the JSON body parser,
 * the one error map, the 404, security headers, CORS (only when CORS_ORIGINS is set) and the OpenAPI document
 * at /docs.
 */
export default fp(async function httpPlugin (app, opts: { corsOrigins: string[] | boolean }) {
  app.setValidatorCompiler(createValidatorCompiler())
  // JSON routes set their security headers in one hook of their own; HTML routes get helmet in their own scope.
  const setApiHeaders = (_req: unknown, reply: FastifyReply, done: () => void) => { reply.headers(API_SECURITY_HEADERS); done() }
  app.addHook('onRoute', (route) => {
    if (!isApiRoute(route.url ?? route.path)) return
    const own = route.onRequest
    route.onRequest = own === undefined ? [setApiHeaders] : [setApiHeaders, ...(Array.isArray(own) ? own : [own])]
  })
  // The error body, once: every route's error responses refer to it (a component of the OpenAPI document).
  app.addSchema({ $id: 'ErrorBody', title: 'ErrorBody', ...ErrorResponse })
  // Every route registered after this is completed for the OpenAPI document (error statuses, security).
  app.addHook('onRoute', documentRoute)

  // JSON only: a body of any other type is a 415 (Fastify would otherwise parse text/plain as a string).
  // Fastify's own parser (secure-json-parse, prototype poisoning refused), plus: no NUL characters anywhere.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = body as string
    if (text.length === 0) return done(new AppError('INVALID_JSON', 'the JSON body is empty', 400), undefined)
    if (text.includes('\u0000') || escapedNul.test(text)) {
      return done(new AppError('VALIDATION_ERROR', 'body: strings must not contain NUL characters', 400), undefined)
    }
    try {
      done(null, secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' }))
    } catch (err) {
      done(new AppError('INVALID_JSON', `the body is not valid JSON: ${(err as Error).message}`, 400), undefined)
    }
  })

  app.setErrorHandler((err, req, reply) => {
    const { statusCode, body } = toErrorResponse(err)
    if (statusCode >= 500) req.log.error({ err }, 'request failed')
    else req.log.debug({ err: { message: (err as Error).message } }, 'request rejected')
    if ((statusCode === 429 || statusCode === 503) && !reply.hasHeader('retry-after')) {
      const unavailable = databaseUnavailable(err)
      void reply.header('retry-after', (err as { retryAfterSeconds?: number }).retryAfterSeconds ?? unavailable?.retryAfterSeconds ?? 1)
    }
    void reply.headers(API_SECURITY_HEADERS).status(statusCode).send(body)
  })
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!
    void reply.headers(API_SECURITY_HEADERS).status(404).send(errorBody('NOT_FOUND', `no route ${req.method} ${path.length > 200 ? `${path.slice(0, 200)}…` : path}`))
  })

  if (opts.corsOrigins !== false) await app.register(cors, { origin: opts.corsOrigins })
  await app.register(swagger, {
    // Shared schemas keep their own names in components/schemas.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'coldboard',
        version: API_VERSION,
        description: 'Cold-chain monitoring: organizations, sites, refrigeration units, devices, readings, alerts, and the organization ' +
          'dashboard served through a Redis cache. Every error is `{ error: { code, message } }` (codes: docs/api.md). ' +
          'Real-time events are on Socket.io at /socket.io (docs/api.md).',
        license: { name: 'MIT', identifier: 'MIT' },
        contact: { name: 'coldboard', url: 'https://github.com/coldboard/coldboard' }
      },
      servers: [{ url: '/', description: 'this coldboard instance' }],
      tags: apiTags,
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' }
        }
      },
      security: [{ bearer: [] }]
    }
  })
  await app.register(async (html) => {
    await html.register(helmet, HTML_SECURITY)
    await html.register(swaggerUi, { routePrefix: '/docs' })
  })
}, { name: 'http' })
