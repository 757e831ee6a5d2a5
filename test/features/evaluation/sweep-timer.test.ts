import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { eq } from 'drizzle-orm'
import type { FastifyBaseLogger } from 'fastify'
import { units } from '../../../src/db/schema.js'
import { createSweepTimer } from '../../../src/features/evaluation/sweep-timer.js'
import { manualClock } from '../../../src/lib/clock.js'
import { buildTestApp } from '../../helpers/fixture.js'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js'
import { createOrgFixture } from '../../helpers/fixtures.js'
import { waitFor } from '../../helpers/redis.js'

/** A logger that keeps what was logged at error level. */
function recordingLog () {
  const errors: unknown[] = []
  const log = { error: (obj: unknown) => { errors.push(obj) } } as unknown as FastifyBaseLogger
  return { log, errors }
}

function deferred () {
  let settle!: () => void
  const promise = new Promise<void>((resolve) => { settle = resolve })
  return { promise, resolve: settle }
}

describe('createSweepTimer', () => {
  afterEach(() => { vi.useRealTimers() })

  it('never runs two sweeps at once', async () => {
    const pending = deferred()
    let calls = 0
    const sweeper = createSweepTimer({ sweep: () => { calls++; return pending.promise }, intervalMs: 1000, log: recordingLog().log })
    const first = sweeper.tick()
    const second = sweeper.tick()
    expect(calls).toBe(1)
    pending.resolve()
    await Promise.all([first, second])
    await sweeper.tick()
    expect(calls).toBe(2)
  })

  it('logs a failed sweep and keeps sweeping on the next tick', async () => {
    vi.useFakeTimers()
    const { log, errors } = recordingLog()
    let calls = 0
    const sweeper = createSweepTimer({
      sweep: async () => { calls++; if (calls === 1) throw new Error('database unavailable') },
      intervalMs: 1000,
      log
    })
    sweeper.start()
    await vi.advanceTimersByTimeAsync(1000)
    expect(errors).toEqual([{ err: expect.objectContaining({ message: 'database unavailable' }) }])
    await vi.advanceTimersByTimeAsync(2000)
    expect(calls).toBe(3)
    await sweeper.stop()
    await vi.advanceTimersByTimeAsync(5000)
    expect(calls).toBe(3)
  })

  it('stop() waits for the sweep in progress', async () => {
    vi.useFakeTimers()
    const pending = deferred()
    let finished = false
    const sweeper = createSweepTimer({ sweep: () => pending.promise.then(() => { finished = true }), intervalMs: 1000, log: recordingLog().log })
    sweeper.start()
    await vi.advanceTimersByTimeAsync(1000)
    const stopped = sweeper.stop()
    pending.resolve()
    await stopped
    expect(finished).toBe(true)
  })
})

// Hand-built (buildTestApp) rather than useTestApp: the test closes the app itself, with a sweep possibly in flight.
describe('evaluation plugin: the local sweep timer (postgres)', () => {
  let database: TestDatabase

  beforeAll(async () => { database = await createTestDatabase() })
  afterAll(async () => { await database?.drop() })

  it('sweeps on its timer when enabled, and closes cleanly', async () => {
    const created = new Date('2030-06-01T00:00:00.000Z')
    const clock = manualClock(new Date(created.getTime() + 20 * 60_000))
    // No Redis, so no queue: the timer is the only sweeper (src/features/evaluation/index.ts).
    const app = await buildTestApp({ database, clock, sweeper: true, env: { SWEEP_INTERVAL_SECONDS: '1' } })
    try {
      const fx = await createOrgFixture(app.db, { units: 1, createdAt: created })
      await app.ready()
      const state = async () => (await app.db.select({ state: units.state }).from(units).where(eq(units.id, fx.units[0]!.id)))[0]!.state
      await waitFor(async () => (await state()) === 'offline', 10_000, 'the sweep timer to turn the silent unit offline')
      expect(await state()).toBe('offline')
    } finally {
      await app.close()
    }
  })
})
