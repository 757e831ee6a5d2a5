import fp from 'fastify-plugin'
import { reportsRoutes } from './routes.js'
import { createReportsService } from './service.js'

declare module 'fastify' {
  interface FastifyInstance {
    reports: ReturnType<typeof createReportsService>
  }
}

/** Compliance reports: read straight from PostgreSQL, never through the dashboard cache. */
export default fp(async function reportsPlugin (app, _opts: Record<string, unknown>) {
  app.decorate('reports', createReportsService({
    db: app.db,
    clock: app.clock,
    statementTimeoutMs: app.config.REPORT_STATEMENT_TIMEOUT_MS,
    concurrencyPerOrg: app.config.REPORT_CONCURRENCY_PER_ORG
  }))
  await app.register(reportsRoutes)
}, { name: 'reports', dependencies: ['core', 'auth'], decorators: { fastify: ['db', 'clock', 'config'] } })
