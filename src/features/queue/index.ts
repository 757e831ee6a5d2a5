import fp from 'fastify-plugin'
import { createIngestionQueue, type IngestionQueue } from './ingestion-queue.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** null when Redis is disabled: ingestion then always evaluates inline. */
    queue: IngestionQueue | null
  }
}

/**
 * The BullMQ producer, and with `worker` the evaluation worker and the offline sweeper job. Workers
 * start once every plugin is ready, because they call the monitoring service registered later.
 */
export default fp(async function queuePlugin (app, opts: { worker: boolean }) {
  const queue = app.redis
    ? createIngestionQueue({ redis: app.redis, prefix: app.config.QUEUE_PREFIX, log: app.log, sweepEverySeconds: app.config.SWEEP_INTERVAL_SECONDS })
    : null
  app.decorate('queue', queue)
  if (queue && opts.worker) {
    app.addHook('onReady', async () => {
      await queue.startWorkers({
        process: (job) => app.monitoring.processUnits(job.organizationId, job.unitIds),
        sweep: () => app.monitoring.sweep()
      })
    })
  }
  app.addHook('onClose', async () => { await queue?.close() })
}, { name: 'queue', dependencies: ['core', 'redis'] })
