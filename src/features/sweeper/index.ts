import fp from 'fastify-plugin'
import { createSweeper } from './sweeper.js'

/**
 * The periodic sweep that turns silent units and devices offline and escalates long excursions.
 * With Redis it is a BullMQ repeatable job (src/features/queue), run once per period by whichever worker
 * takes it; this local timer then only sweeps while the queue is unavailable, so time still moves unit
 * states when Redis is down. Without Redis it is the only sweeper. Off unless `timer` (tests drive
 * `app.monitoring.sweep()` by hand with a manual clock).
 */
export default fp(async function sweeperPlugin (app, opts: { timer?: boolean }) {
  if (!opts.timer) return
  const sweeper = createSweeper({
    sweep: async () => {
      if (app.queue?.ready()) return
      await app.monitoring.sweep()
    },
    intervalMs: app.config.SWEEP_INTERVAL_SECONDS * 1000,
    log: app.log.child({ component: 'sweeper' })
  })
  app.addHook('onReady', async () => { sweeper.start() })
  app.addHook('onClose', async () => { await sweeper.stop() })
}, { name: 'sweeper', dependencies: ['core', 'monitoring', 'queue'] })
