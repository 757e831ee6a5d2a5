import type { RouteOptions } from 'fastify'
import { errorCodes, type ErrorCode } from '../errors.js'
import { routeAuthMode, type AuthMode } from './auth-mode.js'

type Schema = Record<string, unknown> & { hide?: boolean, operationId?: string, summary?: string, response?: Record<string, unknown>, params?: unknown, querystring?: unknown, body?: unknown, security?: unknown }

/** Which error statuses a route can answer, from how it authenticates and what it takes. */
export function errorStatuses (url: string, mode: AuthMode, schema: Schema): number[] {
  // Any request can meet Node's HTTP parser (431) and an unexpected failure (500).
  const out = new Set<number>([431, 500])
  if (schema.params || schema.querystring || schema.body) out.add(400)
  if (mode !== 'public') {
    out.add(400) // a malformed credential or id
    out.add(401)
    out.add(429)
    out.add(503)
  }
  if (mode === 'jwt' && url.includes(':orgId')) out.add(403)
  if (url.includes('/:')) { out.add(404); out.add(414) }
  if (schema.body) { out.add(413); out.add(415) }
  return [...out].sort((a, b) => a - b)
}

const codesOf = (status: number) => (Object.keys(errorCodes) as ErrorCode[]).filter((c) => errorCodes[c].status === status)
const titles: Record<number, string> = {
  400: 'Invalid input',
  431: 'Headers too large',
  401: 'Not authenticated',
  403: 'Not allowed',
  404: 'Not found',
  409: 'Conflict',
  413: 'Body too large',
  414: 'Path parameter too long',
  415: 'Not JSON',
  429: 'Too many requests',
  500: 'Internal error',
  503: 'Database unavailable'
}

/** The error response of a status: the one error body, its codes from the catalogue, Retry-After where it applies. */
export function errorResponse (status: number): Record<string, unknown> {
  const codes = codesOf(status)
  const retry = status === 429 || status === 503
  return {
    $ref: 'ErrorBody#',
    description: `${titles[status] ?? 'Error'}: ${codes.join(', ')} (docs/api.md)`,
    ...(retry ? { headers: { 'retry-after': { type: 'integer', minimum: 1, description: 'seconds to wait before retrying' } } } : {})
  }
}

/**
 * Completes a route's OpenAPI description from what the code already knows, so the document cannot forget what
 * a route answers: every error status it can answer with the error body, the right security (none for public
 * routes), a description on every success response. A route without an operationId is refused at start-up.
 */
export function documentRoute (route: RouteOptions): void {
  const schema = route.schema as Schema | undefined
  if (!schema || schema.hide) return
  const methods = [route.method].flat()
  if (methods.every((m) => m === 'HEAD')) return
  if (!schema.operationId) throw new Error(`route ${methods.join(',')} ${route.url} has no operationId (every documented route needs one)`)
  const mode = routeAuthMode(route.url, (route.config as { auth?: AuthMode } | undefined)?.auth)
  if (mode === 'public') schema.security = []
  else if (mode === 'apiKey') schema.security = [{ apiKey: [] }]
  const response: Record<string, unknown> = {}
  for (const [status, s] of Object.entries(schema.response ?? {})) {
    const r = s as Record<string, unknown>
    if (r.description) response[status] = r
    else if (Number(status) < 400) response[status] = { ...r, description: schema.summary ?? 'Success' }
    else { const { description, headers } = errorResponse(Number(status)); response[status] = { ...r, description, ...(headers ? { headers } : {}) } }
  }
  for (const status of errorStatuses(route.url, mode, schema)) {
    if (!(String(status) in response)) response[String(status)] = errorResponse(status)
  }
  schema.response = response
}
