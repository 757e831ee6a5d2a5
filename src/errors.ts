/** A domain error: a SCREAMING_SNAKE code, an HTTP status, the original error as cause. */
export class AppError extends Error {
  constructor (
    readonly code: string,
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
  constructor (message: string, code = 'CONFLICT') { super(code, message, 409) }
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

export interface ErrorBody { error: { code: string, message: string } }

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
  if (err instanceof AppError) {
    return { statusCode: err.statusCode, body: { error: { code: err.code, message: err.message } } }
  }
  const e = err as FastifyLikeError
  if (e?.validation) {
    return { statusCode: 400, body: { error: { code: 'VALIDATION_ERROR', message: e.message } } }
  }
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500
  if (status >= 400 && status < 500) {
    const code = fastifyCode(e.code, status)
    return { statusCode: status, body: { error: { code, message: e.message } } }
  }
  return { statusCode: 500, body: { error: { code: 'INTERNAL_ERROR', message: 'internal server error' } } }
}

function fastifyCode (code: string | undefined, status: number): string {
  switch (code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return 'UNSUPPORTED_MEDIA_TYPE'
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return 'PAYLOAD_TOO_LARGE'
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY': return 'INVALID_JSON'
  }
  if (status === 429) return 'RATE_LIMITED'
  if (status === 404) return 'NOT_FOUND'
  if (status === 415) return 'UNSUPPORTED_MEDIA_TYPE'
  if (status === 413) return 'PAYLOAD_TOO_LARGE'
  if (code && /^[A-Z_]+$/.test(code) && !code.startsWith('FST_')) return code
  return 'BAD_REQUEST'
}
