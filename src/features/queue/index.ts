import fp from 'fastify-plugin'
import { metricsOn } from '../../infra/metrics.js'
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
    ? createIngestionQueue({
      redis: app.redis,
      prefix: app.config.queuePrefix,
      log: app.log,
      sweepEverySeconds: app.config.SWEEP_INTERVAL_SECONDS,
      reconcileEverySeconds: app.config.RECONCILE_INTERVAL_SECONDS
    })
    : null
  app.decorate('queue', queue)
  if (queue) {
    // Read from Redis at each scrape: depth by state, and how long the oldest waiting job has waited.
    const m = metricsOn(app.metrics.registry)
    m.gauge({
      name: 'coldboard_queue_jobs',
      help: 'Evaluation jobs by state (failed: out of retries; their readings are caught up by the reconciler)',
      labelNames: ['state'] as const,
      async collect () {
        const stats = await queue.stats()
        if (stats) for (const state of ['waiting', 'active', 'delayed', 'failed'] as const) this.set({ state }, stats[state])
      }
    })
    m.gauge({
      name: 'coldboard_queue_oldest_waiting_seconds',
      help: 'Age of the oldest evaluation job still waiting (0 when none): a stalled or absent worker',
      async collect () {
        const stats = await queue.stats()
        if (stats) this.set(stats.oldestWaitingSeconds)
      }
    })
  }
  app.addHook('onClose', async () => { await queue?.close() })
}, { name: 'queue', dependencies: ['core', 'redis'], decorators: { fastify: ['config', 'metrics', 'redis'] } })
