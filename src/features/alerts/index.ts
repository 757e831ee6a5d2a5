import fp from 'fastify-plugin'
import { alertRoutes } from './routes.js'
import { createAlertService, type AlertService } from './service.js'

declare module 'fastify' {
  interface FastifyInstance { alerts: AlertService }
}

/** Decorates `alerts` and serves the alert list and the acknowledge / resolve actions. */
export default fp(async function alertsPlugin (app) {
  const service = createAlertService({ db: app.db, clock: app.clock, changes: app.changes })
  app.decorate('alerts', service)
  alertRoutes(app, service)
}, { name: 'alerts', dependencies: ['core', 'auth', 'changes'], decorators: { fastify: ['db', 'clock', 'changes'] } })
