import fp from 'fastify-plugin'
import { createEvaluation, type Evaluation } from './service.js'
import { createSweepTimer } from './sweep-timer.js'
import { MAINTAIN_EVERY_MS } from '../queue/ingestion-queue.js'

declare module 'fastify' {
  interface FastifyInstance { evaluation: Evaluation }
}

export interface EvaluationPluginOptions {
  /** Run the queue's workers (evaluation jobs, the offline sweep job) in this process (`serve` without --no-worker). */
  worker?: boolean
  /**
   * The local sweep timer (`localUpkeep`): with a queue it sweeps and reconciles only while the queue is unavailable
   * or stalled (time must still move unit states, and accepted readings must still be evaluated, when Redis is down
   * or no worker takes jobs); without Redis it is the only sweeper. Off in tests, which sweep by hand.
   */
  sweeper?: boolean
}

/** Decorates `evaluation` (queue, else inline) and runs the workers and the sweep timer this process is asked to. */
export default fp(async function evaluationPlugin (app, opts: EvaluationPluginOptions) {
  const evaluation = createEvaluation({ db: app.db, clock: app.clock, queue: app.queue, monitoring: app.monitoring, metrics: app.metrics, log: app.log, stallSeconds: app.config.QUEUE_STALL_SECONDS })
  app.decorate('evaluation', evaluation)
  const { queue, monitoring } = app

  if (queue && opts.worker) {
    // Once every plugin is ready: jobs may start arriving at once.
    app.addHook('onReady', async () => {
      await queue.startWorkers({
        process: (job) => evaluation.evaluate(job),
        sweep: () => monitoring.sweep(),
        reconcile: async () => { await evaluation.reconcile() },
        maintain: () => app.maintenance.run()
      })
    })
  }
  if (opts.sweeper) {
    const timer = createSweepTimer({
      // Without the queue, time must still move unit states and unevaluated readings must still be caught up.
      sweep: async () => { await evaluation.localUpkeep() },
      intervalMs: app.config.SWEEP_INTERVAL_SECONDS * 1000,
      log: app.log.child({ component: 'sweeper' })
    })
    app.addHook('onReady', async () => { timer.start() })
    app.addHook('onClose', async () => { await timer.stop() })
  }
  // Partitions ahead and retention, likewise: the queue's repeatable job, else this timer (once at start too), in the
  // processes that work the queue (an API-only instance leaves the DDL to them).
  if (opts.sweeper && (opts.worker || !queue)) {
    const maintainer = createSweepTimer({
      sweep: async () => { if (!queue?.ready()) await app.maintenance.run() },
      intervalMs: MAINTAIN_EVERY_MS,
      log: app.log.child({ component: 'maintenance' })
    })
    app.addHook('onReady', async () => { maintainer.start(); void maintainer.tick() })
    app.addHook('onClose', async () => { await maintainer.stop() })
  }
}, { name: 'evaluation', dependencies: ['core', 'queue', 'monitoring', 'maintenance'], decorators: { fastify: ['config', 'db', 'clock', 'metrics', 'queue', 'monitoring', 'maintenance'] } })
