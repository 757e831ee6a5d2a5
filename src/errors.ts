/**
 * Every error code coldboard answers, with its status and meaning: the one list behind the error bodies, the
 * OpenAPI document and the catalogue in docs/api.md (`npm run api:generate` writes it).
 */
export const errorCodes = {
  VALIDATION_ERROR: { status: 400, meaning: 'A parameter, the query string or the body is invalid; the message names the field. Nothing was changed.' },
  INVALID_JSON: { status: 400, meaning: 'The body is not JSON, or is empty.' },
  UNKNOWN_DEVICE: { status: 400, meaning: 'A reading names a device that is not the API key\'s organization\'s; the whole batch was refused.' },
  BAD_REQUEST: { status: 400, meaning: 'The request could not be parsed (a malformed URL, a broken HTTP message).' },
  UNAUTHORIZED: { status: 401, meaning: 'No credentials, or invalid, expired or revoked ones.' },
  FORBIDDEN: { status: 403, meaning: 'The credentials are valid but not for this organization, or the role is too low.' },
  NOT_FOUND: { status: 404, meaning: 'No such route, or no such resource in this organization.' },
  CONFLICT: { status: 409, meaning: 'The change conflicts with the current state.' },
  DUPLICATE_SLUG: { status: 409, meaning: 'An organization with this slug already exists.' },
  DUPLICATE_DEVICE_EUI: { status: 409, meaning: 'A device with this EUI already exists (EUIs are unique across organizations).' },
  ALERT_RESOLVED: { status: 409, meaning: 'The alert is resolved: there is nothing left to acknowledge.' },
  PAYLOAD_TOO_LARGE: { status: 413, meaning: 'The body is larger than 1 MiB.' },
  URI_TOO_LONG: { status: 414, meaning: 'A path parameter is longer than any id (the URL is not echoed back).' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'The body is not application/json.' },
  RATE_LIMITED: { status: 429, meaning: 'Too many requests (the principal\'s budget, or repeated failed authentications): retry after Retry-After seconds.' },
  HEADERS_TOO_LARGE: { status: 431, meaning: 'The request headers are too large.' },
  INTERNAL_ERROR: { status: 500, meaning: 'An unexpected error; details are in the server log, never in the response.' },
  REPORT_TIMEOUT: { status: 503, meaning: 'The report took longer than REPORT_STATEMENT_TIMEOUT_MS: ask for a shorter window.' },
  SERVICE_UNAVAILABLE: { status: 503, meaning: 'The database cannot take the request now (no free connection, a statement past its timeout): retry after Retry-After seconds.' }
} as const satisfies Record<string, { status: number, meaning: string }>
export type ErrorCode = keyof typeof errorCodes

/** A domain error: a SCREAMING_SNAKE code of the catalogue, an HTTP status, the original error as cause. */
export class AppError extends Error {
  constructor (
    readonly code: ErrorCode,
    message: string,
    readonly statusCode = 400,
    options?: { cause?: unknown }
  ) {
    super(message, options)
    this.name = 'AppError'
  }
}

export class NotFoundError extends AppError {
  constructor (what: string) { super('NOT_FOUND', `${what} not found`, 404) }
}

export class ValidationError extends AppError {
  constructor (message: string) { super('VALIDATION_ERROR', message, 400) }
}

export class ConflictError extends AppError {
  constructor (message: string, code: ErrorCode = 'CONFLICT') { super(code, message, 409) }
}

export class UnauthorizedError extends AppError {
  constructor (message = 'missing or invalid credentials') { super('UNAUTHORIZED', message, 401) }
}

export class ForbiddenError extends AppError {
  constructor (message = 'not allowed for this organization') { super('FORBIDDEN', message, 403) }
}

export class ServiceUnavailableError extends AppError {
  readonly retryAfterSeconds = 1
  constructor (message: string, options?: { cause?: unknown }) { super('SERVICE_UNAVAILABLE', message, 503, options) }
}

export interface ErrorBody { error: { code: ErrorCode, message: string } }

/** The body of an error response (the one shape every 4xx and 5xx has). */
export const errorBody = (code: ErrorCode, message: string): ErrorBody => ({ error: { code, message } })

/**
 * A database that cannot take the query now: the pool had no connection within PG_ACQUIRE_TIMEOUT_MS, a statement
 * ran past PG_STATEMENT_TIMEOUT_MS (57014), the server refuses connections (53300, ECONNREFUSED). Drizzle wraps
 * the driver's error, so the whole cause chain is searched.
 */
export function databaseUnavailable (err: unknown): ServiceUnavailableError | null {
  for (let e: unknown = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown, message?: unknown }
    if (typeof message === 'string' && /timeout exceeded when trying to connect/i.test(message)) {
      return new ServiceUnavailableError('the database is busy (no connection available): retry shortly', { cause: err })
    }
    if (code === '57014') return new ServiceUnavailableError('the database took too long to answer: retry shortly', { cause: err })
    if (code === '53300' || code === 'ECONNREFUSED' || code === '57P03') return new ServiceUnavailableError('the database is unavailable: retry shortly', { cause: err })
  }
  return null
}

interface FastifyLikeError { statusCode?: number, code?: string, message: string, validation?: unknown }

/** Maps any thrown value to a status and a public body; internals of 5xx stay hidden. */
export function toErrorResponse (err: unknown): { statusCode: number, body: ErrorBody } {
  const unavailable = err instanceof AppError ? null : databaseUnavailable(err)
  if (unavailable) return toErrorResponse(unavailable)
  if (err instanceof AppError) return { statusCode: err.statusCode, body: errorBody(err.code, err.message) }
  const e = err as FastifyLikeError
  if (e?.validation) return { statusCode: 400, body: errorBody('VALIDATION_ERROR', e.message) }
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500
  if (status >= 400 && status < 500) {
    const code = frameworkCode(e.code, status)
    // A framework message may quote the URL or the input: the catalogue's meaning is safer for those.
    const message = code === 'URI_TOO_LONG' || code === 'BAD_REQUEST' ? errorCodes[code].meaning : e.message
    return { statusCode: errorCodes[code].status === status ? status : errorCodes[code].status, body: errorBody(code, message) }
  }
  return { statusCode: 500, body: errorBody('INTERNAL_ERROR', 'internal server error') }
}

/** The catalogue's code for an error Fastify or Node raised itself. */
function frameworkCode (code: string | undefined, status: number): ErrorCode {
  switch (code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return 'UNSUPPORTED_MEDIA_TYPE'
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return 'PAYLOAD_TOO_LARGE'
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY': return 'INVALID_JSON'
    case 'FST_ERR_MAX_PARAM_LENGTH': return 'URI_TOO_LONG'
  }
  switch (status) {
    case 401: return 'UNAUTHORIZED'
    case 403: return 'FORBIDDEN'
    case 404: return 'NOT_FOUND'
    case 413: return 'PAYLOAD_TOO_LARGE'
    case 414: return 'URI_TOO_LONG'
    case 415: return 'UNSUPPORTED_MEDIA_TYPE'
    case 429: return 'RATE_LIMITED'
    case 431: return 'HEADERS_TOO_LARGE'
  }
  if (code && code in errorCodes) return code as ErrorCode
  return 'BAD_REQUEST'
}
