import fp from 'fastify-plugin'
import { createMaintenance, type Maintenance } from './service.js'

declare module 'fastify' {
  interface FastifyInstance { maintenance: Maintenance }
}

/** Decorates `maintenance`: partitions ahead and on demand, retention. The worker runs it (src/features/evaluation). */
export default fp(async function maintenancePlugin (app) {
  app.decorate('maintenance', createMaintenance({
    db: app.db,
    clock: app.clock,
    readingsRetentionDays: app.config.READINGS_RETENTION_DAYS,
    rollupRetentionDays: app.config.ROLLUP_RETENTION_DAYS,
    log: app.log
  }))
}, { name: 'maintenance', dependencies: ['core'], decorators: { fastify: ['db', 'clock', 'config'] } })
