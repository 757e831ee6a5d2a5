import fp from 'fastify-plugin'
import { createChangePipeline, type ChangePipelineOptions, type ChangePipeline } from './pipeline.js'

declare module 'fastify' {
  interface FastifyInstance { changes: ChangePipeline }
}

/** Decorates `changes`, the write path, with the invalidation and the emit that buildApp (src/app.ts) hands it. */
export default fp(async function changesPlugin (app, opts: Pick<ChangePipelineOptions, 'invalidate' | 'emit'>) {
  const delay = app.metrics.emitDelay
  app.decorate('changes', createChangePipeline({ db: app.db, batch: (work) => app.database.batch(work), log: app.log, invalidate: opts.invalidate, emit: opts.emit, observeEmitDelay: (s) => delay.observe(s) }))
}, { name: 'changes', dependencies: ['core'], decorators: { fastify: ['db', 'database', 'metrics'] } })
