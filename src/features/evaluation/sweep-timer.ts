import type { FastifyBaseLogger } from 'fastify'

export interface SweepTimerOptions {
  sweep: () => Promise<void>
  intervalMs: number
  log: FastifyBaseLogger
}

/**
 * Runs `sweep` every interval: never two at once (a slow sweep makes the next tick a no-op), errors
 * logged and the timer kept, the timer unref'd so it never holds the process open.
 */
export function createSweepTimer (opts: SweepTimerOptions) {
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined

  function tick (): Promise<void> {
    if (running) return running
    running = opts.sweep()
      .catch((err: unknown) => { opts.log.error({ err }, 'sweep failed') })
      .finally(() => { running = undefined })
    return running
  }

  return {
    start (): void {
      if (timer) return
      timer = setInterval(() => { void tick() }, opts.intervalMs)
      timer.unref()
    },
    /** Stops the timer and waits for a sweep in progress, so the database is not closed under it. */
    async stop (): Promise<void> {
      clearInterval(timer)
      timer = undefined
      await running
    },
    /** One sweep now (or the one in progress). */
    tick
  }
}
export type SweepTimer = ReturnType<typeof createSweepTimer>
