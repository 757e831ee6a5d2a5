import fp from 'fastify-plugin'
import { apiKeyRoutes } from './routes-api-keys.js'
import { deviceRoutes } from './routes-devices.js'
import { orgRoutes } from './routes-orgs.js'
import { unitRoutes } from './routes-units.js'
import { createManagementService, type ManagementService } from './service.js'

declare module 'fastify' {
  interface FastifyInstance { management: ManagementService }
}

/** Decorates `management` and serves the organization, site, unit, device and API key endpoints. */
export default fp(async function managementPlugin (app) {
  const service = createManagementService({
    db: app.db,
    clock: app.clock,
    changes: app.changes,
    reevaluateIn: app.monitoring.reevaluateIn,
    rollups: app.rollups
  })
  app.decorate('management', service)
  orgRoutes(app, service)
  unitRoutes(app, service)
  deviceRoutes(app, service)
  apiKeyRoutes(app, app.apiKeys)
}, { name: 'management', dependencies: ['core', 'auth', 'changes', 'monitoring', 'rollups'], decorators: { fastify: ['db', 'clock', 'changes', 'monitoring', 'apiKeys', 'rollups'] } })
