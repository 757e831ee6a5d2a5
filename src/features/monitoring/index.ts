import fp from 'fastify-plugin'
import { createMonitoringService, type MonitoringService } from './service.js'

declare module 'fastify' {
  interface FastifyInstance { monitoring: MonitoringService }
}

/** Decorates `monitoring`: the state machine and alert lifecycle shared by ingestion, management and the sweeper. */
export default fp(async function monitoringPlugin (app) {
  app.decorate('monitoring', createMonitoringService({
    db: app.db,
    changes: app.changes,
    clock: app.clock,
    offlineAfterMinutes: app.config.OFFLINE_AFTER_MINUTES,
    confirmMinutes: app.config.CONFIRM_MINUTES,
    log: app.log.child({ component: 'monitoring' })
  }))
}, { name: 'monitoring', dependencies: ['core', 'changes'], decorators: { fastify: ['config', 'clock', 'db', 'changes'] } })
