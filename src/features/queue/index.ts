import fp from 'fastify-plugin'
import { createIngestionQueue, type IngestionQueue } from './ingestion-queue.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** null when Redis is disabled: evaluation then always runs inline. */
    queue: IngestionQueue | null
  }
}

/** The BullMQ queues on the shared Redis; what runs on them is the evaluation feature's (src/features/evaluation). */
export default fp(async function queuePlugin (app) {
  const queue = app.redis
    ? createIngestionQueue({ redis: app.redis, prefix: app.config.queuePrefix, log: app.log, sweepEverySeconds: app.config.SWEEP_INTERVAL_SECONDS })
    : null
  app.decorate('queue', queue)
  app.addHook('onClose', async () => { await queue?.close() })
}, { name: 'queue', dependencies: ['core', 'redis'], decorators: { fastify: ['config', 'redis'] } })
