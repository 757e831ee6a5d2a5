import fp from 'fastify-plugin'
import { alertRoutes } from './routes.js'
import { createAlertService, type AlertService } from './service.js'

declare module 'fastify' {
  interface FastifyInstance { alerts: AlertService }
}

/** Decorates `app.alerts` and serves the alert list and the acknowledge / resolve actions. */
export default fp(async function alertsPlugin (app) {
  const service = createAlertService({ db: app.db, clock: app.clock, events: app.events })
  app.decorate('alerts', service)
  alertRoutes(app, service)
}, { name: 'alerts', dependencies: ['core', 'auth'] })
