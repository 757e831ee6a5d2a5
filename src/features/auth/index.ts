import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AppError, ForbiddenError, UnauthorizedError, ValidationError } from '../../errors.js'
import { routeAuthMode } from '../../http/auth-mode.js'
import { canonicalUuid } from '../../http/validation.js'
import { createApiKeyService } from './api-keys.js'
import { createFailureLimiter, createRequestLimiter } from './limits.js'
import { createTokenService, hasRole, type Principal, type Role } from './tokens.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** How the route authenticates; routes under /api default to 'jwt', others to 'public'. */
    auth?: 'jwt' | 'apiKey' | 'public'
    /** Least role needed on the route's :orgId; default viewer for reads, manager for writes. */
    role?: Role
    /** Only a token with `admin: true` may call the route. */
    admin?: boolean
  }
  interface FastifyRequest {
    principal: Principal | null
    apiKey: { id: string, organizationId: string } | null
  }
  interface FastifyInstance {
    tokens: ReturnType<typeof createTokenService>
    apiKeys: ReturnType<typeof createApiKeyService>
  }
}

export { routeAuthMode, type AuthMode } from '../../http/auth-mode.js'

export class RateLimitedError extends AppError {
  constructor (message: string, readonly retryAfterSeconds: number) { super('RATE_LIMITED', message, 429) }
}

/**
 * Authentication in onRequest (401), then the principal's request budget (429, RATE_LIMIT_MAX a minute per token
 * subject or API key); authorization on the route's :orgId in preValidation, before the body is validated, so a
 * stranger learns nothing of the schema (403). Repeated failures of one credential from one address answer 429
 * instead of 401, but only failures are ever counted or refused. Every /api route is guarded unless it opts out,
 * so a new route cannot forget its guard.
 */
export default fp(async function authPlugin (app, opts: { jwtSecret: string }) {
  const tokens = createTokenService(opts.jwtSecret, { maxTtlMs: app.config.tokenMaxTtlMs })
  const apiKeys = createApiKeyService({ db: app.db, clock: app.clock })
  app.decorate('tokens', tokens)
  app.decorate('apiKeys', apiKeys)
  app.decorateRequest('principal', null)
  app.decorateRequest('apiKey', null)
  const log = app.log.child({ component: 'auth' })
  const failures = createFailureLimiter({
    limit: app.config.AUTH_FAILURE_LIMIT,
    redis: app.redis?.connection('cache') ?? null,
    keyPrefix: app.config.REDIS_KEY_PREFIX,
    log
  })
  const requests = createRequestLimiter(app.config.RATE_LIMIT_MAX)

  async function fail (req: FastifyRequest, credential: string, err: AppError): Promise<never> {
    const verdict = await failures.fail(req.ip, credential)
    if (!verdict.ok) throw new RateLimitedError('too many failed authentication attempts with this credential', verdict.retryAfterSeconds)
    throw err
  }

  function budget (key: string): void {
    const verdict = requests.take(key)
    if (!verdict.ok) throw new RateLimitedError(`more than ${app.config.RATE_LIMIT_MAX} requests a minute`, verdict.retryAfterSeconds)
  }

  app.addHook('onRequest', async (req: FastifyRequest, _reply: FastifyReply) => {
    const mode = routeAuthMode(req.routeOptions.url ?? req.url, req.routeOptions.config.auth)
    if (mode === 'public') return
    if (mode === 'jwt') {
      const header = req.headers.authorization
      if (!header?.startsWith('Bearer ')) return fail(req, '', new UnauthorizedError('missing bearer token'))
      const token = header.slice(7).trim()
      try {
        req.principal = tokens.verify(token)
      } catch (err) {
        return fail(req, token, err as AppError)
      }
      return budget(`sub:${req.principal.sub}`)
    }
    const key = req.headers['x-api-key']
    if (typeof key !== 'string' || key === '') return fail(req, '', new UnauthorizedError('missing x-api-key header'))
    const found = await apiKeys.authenticate(key)
    if (!found) return fail(req, key, new UnauthorizedError('invalid or revoked API key'))
    req.apiKey = found
    budget(`key:${found.id}`)
  })

  app.addHook('preValidation', async (req) => {
    const cfg = req.routeOptions.config
    if (routeAuthMode(req.routeOptions.url ?? req.url, cfg.auth) !== 'jwt') return
    const principal = req.principal
    if (!principal) throw new UnauthorizedError()
    if (cfg.admin && !principal.admin) throw new ForbiddenError('requires an admin token')
    const orgId = (req.params as { orgId?: string } | undefined)?.orgId
    if (orgId === undefined) return
    // A malformed id says nothing about membership: it is the 400 validation would give it.
    if (!canonicalUuid.test(orgId)) throw new ValidationError('params/orgId must match format "uuid"')
    const min = cfg.role ?? (req.method === 'GET' || req.method === 'HEAD' ? 'viewer' : 'manager')
    if (!hasRole(principal, orgId, min)) {
      throw new ForbiddenError(principal.orgs[orgId.toLowerCase()] ? `requires role ${min} or higher` : 'not a member of this organization')
    }
  })
}, { name: 'auth', dependencies: ['core', 'redis'], decorators: { fastify: ['config', 'db', 'clock', 'redis'] } })
