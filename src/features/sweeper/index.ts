import fp from 'fastify-plugin'
import { createSweeper } from './sweeper.js'

/**
 * The periodic sweep that turns silent units and devices offline and escalates long excursions.
 * Off unless `timer` (tests drive `app.monitoring.sweep()` by hand with a manual clock).
 */
export default fp(async function sweeperPlugin (app, opts: { timer?: boolean }) {
  if (!opts.timer) return
  const sweeper = createSweeper({
    sweep: () => app.monitoring.sweep(),
    intervalMs: app.config.SWEEP_INTERVAL_SECONDS * 1000,
    log: app.log.child({ component: 'sweeper' })
  })
  app.addHook('onReady', async () => { sweeper.start() })
  app.addHook('onClose', async () => { await sweeper.stop() })
}, { name: 'sweeper', dependencies: ['core', 'monitoring'] })
