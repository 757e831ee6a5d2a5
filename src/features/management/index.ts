import fp from 'fastify-plugin'
import { deviceRoutes } from './routes-devices.js'
import { orgRoutes } from './routes-orgs.js'
import { unitRoutes } from './routes-units.js'
import { createManagementService, type ManagementService } from './service.js'

declare module 'fastify' {
  interface FastifyInstance { management: ManagementService }
}

/** Decorates `app.management` and serves the organization, site, unit and device endpoints. */
export default fp(async function managementPlugin (app) {
  const service = createManagementService({
    db: app.db,
    clock: app.clock,
    // Looked up per call so the service never holds a stale reference to the monitoring decorator.
    monitoring: { reevaluateUnit: (orgId, unitId) => app.monitoring.reevaluateUnit(orgId, unitId) },
    invalidateOrg: (orgId) => app.events.invalidateOrg(orgId)
  })
  app.decorate('management', service)
  orgRoutes(app, service)
  unitRoutes(app, service)
  deviceRoutes(app, service)
}, { name: 'management', dependencies: ['core', 'auth', 'monitoring'] })
