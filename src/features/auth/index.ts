import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { RateLimiterMemory } from 'rate-limiter-flexible'
import { and, eq, isNull } from 'drizzle-orm'
import { apiKeys } from '../../db/schema.js'
import { AppError, ForbiddenError, UnauthorizedError } from '../../errors.js'
import { createTokenService, hashApiKey, hasRole, type Principal, type Role } from './tokens.js'

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
  }
}

export type AuthMode = 'jwt' | 'apiKey' | 'public'

export function routeAuthMode (url: string, configured: AuthMode | undefined): AuthMode {
  return configured ?? (url.startsWith('/api/') ? 'jwt' : 'public')
}

/**
 * Authentication in onRequest (401, and 429 once an address has failed too often), authorization on
 * the route's :orgId in preValidation, before the body is validated, so a stranger learns nothing of the
 * schema (403); a malformed id of a member's organization is still a 400. Every /api route is guarded
 * unless it opts out, so a new route cannot forget its guard.
 */
export default fp(async function authPlugin (app, opts: { jwtSecret: string }) {
  app.decorate('tokens', createTokenService(opts.jwtSecret))
  app.decorateRequest('principal', null)
  app.decorateRequest('apiKey', null)
  const failures = new RateLimiterMemory({ points: app.config.AUTH_FAILURE_LIMIT, duration: 60 })

  async function fail (req: FastifyRequest, err: AppError): Promise<never> {
    await failures.consume(req.ip).catch(() => {})
    throw err
  }

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const mode = routeAuthMode(req.routeOptions.url ?? req.url, req.routeOptions.config.auth)
    if (mode === 'public') return
    const seen = await failures.get(req.ip)
    if (seen && seen.consumedPoints >= app.config.AUTH_FAILURE_LIMIT) {
      reply.header('retry-after', Math.ceil(seen.msBeforeNext / 1000))
      throw new AppError('RATE_LIMITED', 'too many failed authentication attempts', 429)
    }
    if (mode === 'jwt') {
      const header = req.headers.authorization
      if (!header?.startsWith('Bearer ')) return fail(req, new UnauthorizedError('missing bearer token'))
      try {
        req.principal = app.tokens.verify(header.slice(7).trim())
      } catch (err) {
        return fail(req, err as AppError)
      }
      return
    }
    const key = req.headers['x-api-key']
    if (typeof key !== 'string' || key === '') return fail(req, new UnauthorizedError('missing x-api-key header'))
    const [row] = await app.db.select({ id: apiKeys.id, organizationId: apiKeys.organizationId })
      .from(apiKeys).where(and(eq(apiKeys.hash, hashApiKey(key)), isNull(apiKeys.revokedAt))).limit(1)
    if (!row) return fail(req, new UnauthorizedError('invalid or revoked API key'))
    req.apiKey = row
  })

  app.addHook('preValidation', async (req) => {
    const cfg = req.routeOptions.config
    if (routeAuthMode(req.routeOptions.url ?? req.url, cfg.auth) !== 'jwt') return
    const principal = req.principal
    if (!principal) throw new UnauthorizedError()
    if (cfg.admin && !principal.admin) throw new ForbiddenError('requires an admin token')
    const orgId = (req.params as { orgId?: string } | undefined)?.orgId
    if (orgId === undefined) return
    const min = cfg.role ?? (req.method === 'GET' || req.method === 'HEAD' ? 'viewer' : 'manager')
    if (!hasRole(principal, orgId, min)) {
      throw new ForbiddenError(principal.orgs[orgId] ? `requires role ${min} or higher` : 'not a member of this organization')
    }
  })
}, { name: 'auth', dependencies: ['core'], decorators: { fastify: ['config', 'db'] } })
