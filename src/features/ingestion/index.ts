import fp from 'fastify-plugin'
import { ingestionRoutes } from './routes.js'
import { createIngestionService, type IngestionService } from './service.js'

declare module 'fastify' {
  interface FastifyInstance { ingestion: IngestionService }
}

/** Decorates `ingestion` and serves the device ingestion endpoint. */
export default fp(async function ingestionPlugin (app) {
  const service = createIngestionService({ db: app.db, clock: app.clock, ensurePartitions: app.maintenance.ensurePartitions, partitionsKnown: app.maintenance.partitionsKnown })
  app.decorate('ingestion', service)
  ingestionRoutes(app, service, app.evaluation)
}, { name: 'ingestion', dependencies: ['core', 'auth', 'evaluation', 'maintenance'], decorators: { fastify: ['db', 'clock', 'metrics', 'evaluation', 'maintenance'] } })
