import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { eq } from 'drizzle-orm'
import type { FastifyBaseLogger } from 'fastify'
import type { App } from '../../../src/app.js'
import { units } from '../../../src/db/schema.js'
import { createSweeper } from '../../../src/features/sweeper/sweeper.js'
import { manualClock } from '../../../src/lib/clock.js'
import { buildTestApp } from '../../helpers/app.js'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js'
import { createOrgFixture } from '../../helpers/fixtures.js'

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

describe('createSweeper', () => {
  afterEach(() => { vi.useRealTimers() })

  it('never runs two sweeps at once', async () => {
    const pending = deferred()
    let calls = 0
    const sweeper = createSweeper({ sweep: () => { calls++; return pending.promise }, intervalMs: 1000, log: recordingLog().log })
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
    const sweeper = createSweeper({
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
    const sweeper = createSweeper({ sweep: () => pending.promise.then(() => { finished = true }), intervalMs: 1000, log: recordingLog().log })
    sweeper.start()
    await vi.advanceTimersByTimeAsync(1000)
    const stopped = sweeper.stop()
    pending.resolve()
    await stopped
    expect(finished).toBe(true)
  })
})

describe('sweeper plugin (postgres)', () => {
  let database: TestDatabase
  let app: App

  beforeAll(async () => { database = await createTestDatabase() })
  afterAll(async () => {
    await app?.close()
    await database?.drop()
  })

  it('sweeps on its timer when enabled, and closes cleanly', async () => {
    const created = new Date('2030-06-01T00:00:00.000Z')
    const clock = manualClock(new Date(created.getTime() + 20 * 60_000))
    app = await buildTestApp({ database, clock, sweeper: true, env: { SWEEP_INTERVAL_SECONDS: '1' } })
    const fx = await createOrgFixture(app.db, { units: 1, createdAt: created })
    await app.ready()
    const deadline = Date.now() + 10_000
    let state = fx.units[0]!.state
    while (state !== 'offline' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      state = (await app.db.select({ state: units.state }).from(units).where(eq(units.id, fx.units[0]!.id)))[0]!.state
    }
    expect(state).toBe('offline')
    await app.close()
  })
})
