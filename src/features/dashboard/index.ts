import fp from 'fastify-plugin'
import { createInvalidator } from '../cache/invalidator.js'
import { createDashboardKeys } from './keys.js'
import { createDashboardMetrics, type DashboardMetrics } from './metrics.js'
import { createDashboardQueries, type DashboardQueryService } from './queries.js'
import { createReadThrough, organizationKeys, type ReadThrough } from './read-through.js'
import { dashboardRoutes } from './routes.js'

declare module 'fastify' {
  interface FastifyInstance {
    dashboard: { queries: DashboardQueryService, readThrough: ReadThrough, keys: ReturnType<typeof createDashboardKeys>, metrics: DashboardMetrics }
  }
}

/**
 * The cached dashboard reads: queries (PostgreSQL), the read-through over the generic cache, and one route
 * per query type. Its `readThrough.invalidate` is the write path's invalidation step (wired in src/app.ts).
 */
export default fp(async function dashboardPlugin (app) {
  const prefix = app.config.REDIS_KEY_PREFIX
  const keys = createDashboardKeys(prefix)
  const queries = createDashboardQueries({ db: app.db, clock: app.clock })
  const metrics = createDashboardMetrics(app.metrics.registry)
  const invalidator = createInvalidator({
    store: app.cache,
    channel: `${prefix}cache:invalidate`,
    subscriber: app.redis?.subscriber('cache-sub') ?? null,
    sharded: app.redis?.sharded ?? false,
    fenceKey: keys.fence,
    groupKeys: async (orgId) => organizationKeys(keys, orgId, await queries.unitIds(orgId)),
    log: app.log
  })
  const readThrough = createReadThrough({
    store: app.cache,
    invalidator,
    keys,
    queries,
    metrics,
    log: app.log,
    refresh: { enabled: app.config.CACHE_REFRESH, waitMs: app.config.CACHE_REFRESH_WAIT_MS },
    // Not on a cluster: its sharded pub/sub has no order between the invalidation channel and the event's.
    local: app.config.CACHE_LOCAL && app.redis !== null && !app.redis.sharded ? { maxBytes: app.config.CACHE_LOCAL_MAX_MB * 1024 * 1024 } : null
  })
  // Remembered invalidations are replayed as soon as the cache connection is back.
  app.cache.onReady(() => { if (invalidator.pendingCount() > 0) void invalidator.replay() })
  app.decorate('dashboard', { queries, readThrough, keys, metrics })
  await app.register(dashboardRoutes, { readThrough, metrics })
  app.addHook('onClose', async () => { readThrough.close() })
}, { name: 'dashboard', dependencies: ['core', 'auth', 'redis', 'cache'], decorators: { fastify: ['config', 'db', 'clock', 'metrics', 'redis', 'cache'] } })
