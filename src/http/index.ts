import fp from 'fastify-plugin'
import helmet from '@fastify/helmet'
import cors from '@fastify/cors'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import secureJson from 'secure-json-parse'
import { AppError, databaseUnavailable, toErrorResponse } from '../errors.js'
import { createValidatorCompiler } from './validation.js'

// A NUL character escaped in JSON text (an odd number of backslashes before u0000): PostgreSQL cannot store it.
const escapedNul = /(?:^|[^\\])(?:\\\\)*\\u0000/

/**
 * The HTTP layer every route shares: validation (strict bodies, coercing query strings), the JSON body parser,
 * the one error map, the 404, security headers, CORS and the OpenAPI document at /docs.
 */
export default fp(async function httpPlugin (app, opts: { corsOrigins: string[] | boolean }) {
  app.setValidatorCompiler(createValidatorCompiler())

  // Fastify's own parser (secure-json-parse, prototype poisoning refused), plus: no NUL characters anywhere.
  app.removeContentTypeParser('application/json')
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
    void reply.status(statusCode).send(body)
  })
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: { code: 'NOT_FOUND', message: `route ${req.method} ${req.url.split('?')[0]} not found` } })
  })

  await app.register(helmet, { contentSecurityPolicy: false, crossOriginResourcePolicy: false })
  await app.register(cors, { origin: opts.corsOrigins })
  await app.register(swagger, {
    openapi: {
      info: { title: 'coldboard', version: '0.1.0', description: 'Cold-chain monitoring API' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' }
        }
      },
      security: [{ bearer: [] }]
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
}, { name: 'http' })
