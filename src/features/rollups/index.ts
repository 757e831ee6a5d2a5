import fp from 'fastify-plugin'
import { createRollupsService, type RollupsService } from './service.js'

declare module 'fastify' {
  interface FastifyInstance { rollups: RollupsService }
}

/** Decorates `rollups`: threshold-change re-derivation and rebuilds (the insert trigger maintains them otherwise). */
export default fp(async function rollupsPlugin (app) {
  app.decorate('rollups', createRollupsService({ db: app.db }))
}, { name: 'rollups', dependencies: ['core'], decorators: { fastify: ['db'] } })
