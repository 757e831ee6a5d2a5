import fp from 'fastify-plugin'
import { createDashboardCache, type DashboardCache } from '../cache/dashboard-cache.js'
import { createDashboardQueries } from './queries.js'
import { dashboardRoutes } from './routes.js'
import type { DashboardQueryService } from './queries.js'

declare module 'fastify' {
  interface FastifyInstance {
    dashboard: { queries: DashboardQueryService, cache: DashboardCache }
  }
}

/**
 * Dashboard queries behind the cache-aside layer. Registers the before-emit hook, so every published
 * change invalidates what it affects before it is emitted (D3).
 */
export default fp(async function dashboardPlugin (app) {
  const queries = createDashboardQueries({ db: app.db, clock: app.clock })
  const subscriber = app.redis?.connection('cache-sub') ?? null
  const publisher = app.redis?.connection('cache') ?? null
  const cache = createDashboardCache({ cache: app.cache, queries, metrics: app.metrics, log: app.log, publisher, subscriber })
  app.decorate('dashboard', { queries, cache })
  app.events.beforeEmit((orgId, events) => cache.onEvents(orgId, events))
  app.events.onInvalidateOrg((orgId) => cache.invalidateOrg(orgId))
  await app.register(dashboardRoutes, { cache })
  app.addHook('onClose', async () => { cache.close() })
}, { name: 'dashboard', dependencies: ['core', 'auth', 'cache'] })
