import fp from 'fastify-plugin'
import { ingestionRoutes } from './routes.js'
import { createIngestionService, type IngestionService } from './service.js'

declare module 'fastify' {
  interface FastifyInstance { ingestion: IngestionService }
}

/** Decorates `app.ingestion` and serves the device ingestion endpoint. */
export default fp(async function ingestionPlugin (app) {
  const service = createIngestionService({ db: app.db, clock: app.clock })
  app.decorate('ingestion', service)
  ingestionRoutes(app, service)
}, { name: 'ingestion', dependencies: ['core', 'auth', 'monitoring'] })
