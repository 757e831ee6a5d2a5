import { and, eq } from 'drizzle-orm'
import { Queue, Worker } from 'bullmq'
import { beforeEach, describe, expect, it } from 'vitest'
import { alerts, units } from '../../../src/db/schema.js'
import { RECONCILE_GRACE_MS } from '../../../src/features/evaluation/service.js'
import { INGESTION_QUEUE } from '../../../src/features/queue/ingestion-queue.js'
import { backends, useTestApp, type TestContext } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'
import { sharedRedisUrl, waitFor } from '../../helpers/redis.js'

/**
 * Readings stored but never evaluated (an evaluation job out of retries, a crash between the INSERT and the
 * job) are found and evaluated by the reconciler (src/features/evaluation/service.ts `reconcile`,
 * src/features/evaluation/reconciler.ts), which the worker runs as a repeatable job; /health and /metrics show the
 * evaluation queue's depth, failures and the age of its oldest waiting job (src/features/health/index.ts,
 * src/features/queue/index.ts).
 */

const T0 = new Date('2030-04-01T12:00:00.000Z')

/** Stores readings as ingestion does, without evaluating them: what a lost evaluation job leaves behind. */
function storeOnly (ctx: TestContext, fx: OrgFixture, unitIndexes: number[], temperature: number, recordedAt: Date) {
  return ctx.app.ingestion.storeReadings(fx.org.id, unitIndexes.map((i) => ({ deviceEui: fx.devices[i]!.deviceEui, temperature, recordedAt: recordedAt.toISOString() })))
}

async function metric (ctx: TestContext, name: string, labels = ''): Promise<number | null> {
  const text = (await ctx.app.inject({ url: '/metrics' })).body
  const m = new RegExp(`^${name}${labels.replace(/[{}]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)
  return m ? Number(m[1]) : null
}

describe.each(backends)('reconcile: readings stored but never evaluated ($name)', ({ name }) => {
  const ctx = useTestApp({ backend: name, clock: T0 })
  let fx: OrgFixture

  beforeEach(async () => {
    ctx.clock.set(T0)
    // Earlier tests' leftovers are reconciled first, so that each test counts only its own units.
    ctx.clock.advance(10 * RECONCILE_GRACE_MS)
    await ctx.app.evaluation.reconcile()
    ctx.clock.set(T0)
    ctx.emitted.length = 0
    fx = await ctx.org({ units: 3, tempMin: 2, tempMax: 8, createdAt: new Date(T0.getTime() - 3_600_000) })
  })

  const unit = async (i: number) => (await ctx.db.select().from(units).where(eq(units.id, fx.units[i]!.id)))[0]!
  const openAlerts = (i: number) => ctx.db.select().from(alerts).where(and(eq(alerts.unitId, fx.units[i]!.id), eq(alerts.status, 'active')))

  it('evaluates them once past the grace: states and alerts follow the readings, events are emitted', async () => {
    const reconciled = (await metric(ctx, 'coldboard_readings_reconciled_units_total')) ?? 0
    await storeOnly(ctx, fx, [0], 12, new Date(T0.getTime() - 120_000))
    await storeOnly(ctx, fx, [1], -3, new Date(T0.getTime() - 120_000))
    await storeOnly(ctx, fx, [1], 5, new Date(T0.getTime() - 60_000))
    // Stored, not evaluated.
    expect(await unit(0)).toMatchObject({ state: 'normal', lastReadingAt: null })
    expect(ctx.emitted).toEqual([])

    ctx.clock.advance(RECONCILE_GRACE_MS + 1000)
    expect(await ctx.app.evaluation.reconcile()).toBe(2)
    expect(await unit(0)).toMatchObject({ state: 'too_hot', lastTemperature: 12, lastReadingAt: new Date(T0.getTime() - 120_000) })
    expect(await openAlerts(0)).toEqual([expect.objectContaining({ type: 'temperature_excursion', threshold: 'temp_max', triggerTemperature: 12 })])
    // Both of unit 1's readings, in order: too cold, then back to normal (its alert resolved).
    expect(await unit(1)).toMatchObject({ state: 'normal', lastTemperature: 5, lastReadingAt: new Date(T0.getTime() - 60_000) })
    expect(await openAlerts(1)).toEqual([])
    expect(await ctx.db.$count(alerts, and(eq(alerts.unitId, fx.units[1]!.id), eq(alerts.status, 'resolved')))).toBe(1)
    expect(await unit(2)).toMatchObject({ state: 'normal', lastReadingAt: null })
    const eventsOf = (i: number) => ctx.emitted.filter((e) => e.payload.unitId === fx.units[i]!.id).map((e) => e.name)
    expect(eventsOf(0)).toEqual(expect.arrayContaining(['unitUpdate', 'alertCreated']))
    expect(eventsOf(1)).toEqual(expect.arrayContaining(['alertCreated', 'alertResolved']))
    expect(eventsOf(2)).toEqual([])
    expect(await metric(ctx, 'coldboard_readings_reconciled_units_total')).toBe(reconciled + 2)
  })

  it('is idempotent: a second call evaluates nothing and emits nothing', async () => {
    await storeOnly(ctx, fx, [0, 1, 2], 12, new Date(T0.getTime() - 30_000))
    ctx.clock.advance(RECONCILE_GRACE_MS + 1000)
    expect(await ctx.app.evaluation.reconcile()).toBe(3)
    const after = await Promise.all([0, 1, 2].map(unit))
    const emitted = ctx.emitted.length
    const alertRows = await ctx.db.$count(alerts, eq(alerts.organizationId, fx.org.id))

    ctx.clock.advance(RECONCILE_GRACE_MS)
    expect(await ctx.app.evaluation.reconcile()).toBe(0)
    expect(await Promise.all([0, 1, 2].map(unit))).toEqual(after)
    expect(ctx.emitted).toHaveLength(emitted)
    expect(await ctx.db.$count(alerts, eq(alerts.organizationId, fx.org.id))).toBe(alertRows)
  })

  it('leaves alone readings younger than the grace (their job may still be queued), and takes them once older', async () => {
    await storeOnly(ctx, fx, [0], 12, new Date(T0.getTime() - 10_000))
    ctx.clock.advance(RECONCILE_GRACE_MS / 2)
    await storeOnly(ctx, fx, [1], 12, new Date(T0.getTime() - 10_000))
    // Unit 0's readings are half the grace old: nothing yet.
    expect(await ctx.app.evaluation.reconcile()).toBe(0)
    expect(await unit(0)).toMatchObject({ state: 'normal', lastReadingAt: null })

    // Unit 0's are now past the grace, unit 1's are not.
    ctx.clock.advance(RECONCILE_GRACE_MS / 2 + 1000)
    expect(await ctx.app.evaluation.reconcile()).toBe(1)
    expect(await unit(0)).toMatchObject({ state: 'too_hot' })
    expect(await unit(1)).toMatchObject({ state: 'normal', lastReadingAt: null })

    ctx.clock.advance(RECONCILE_GRACE_MS / 2)
    expect(await ctx.app.evaluation.reconcile()).toBe(1)
    expect(await unit(1)).toMatchObject({ state: 'too_hot' })
  })

  it('leaves alone readings that were evaluated when they arrived', async () => {
    const res = await ctx.ingest(fx, [{ deviceEui: fx.devices[0]!.deviceEui, temperature: 12, recordedAt: new Date(T0.getTime() - 10_000) }])
    expect(res.statusCode).toBe(202)
    expect(await unit(0)).toMatchObject({ state: 'too_hot' })
    const emitted = ctx.emitted.length
    ctx.clock.advance(RECONCILE_GRACE_MS + 1000)
    expect(await ctx.app.evaluation.reconcile()).toBe(0)
    expect(ctx.emitted).toHaveLength(emitted)
  })
})

describe("the worker's repeatable reconcile job (shared Redis, RECONCILE_INTERVAL_SECONDS=5)", () => {
  const ctx = useTestApp({ clock: T0, redis: true, worker: true, env: { RECONCILE_INTERVAL_SECONDS: '5' } })

  it('evaluates readings stored but never evaluated, without anyone calling it', async () => {
    const fx = await ctx.org({ units: 2, createdAt: new Date(T0.getTime() - 3_600_000) })
    await storeOnly(ctx, fx, [0, 1], 12, new Date(T0.getTime() - 60_000))
    ctx.clock.advance(RECONCILE_GRACE_MS + 1000)
    // A deadline as a failure guard: a period is 5 s.
    await waitFor(async () => {
      const rows = await ctx.db.select().from(units).where(eq(units.organizationId, fx.org.id))
      return rows.every((u) => u.state === 'too_hot')
    }, 25_000, 'the reconcile job to evaluate the units')
    expect(await ctx.db.$count(alerts, and(eq(alerts.organizationId, fx.org.id), eq(alerts.status, 'active')))).toBe(2)
    // Counted once the whole pass is done, after the units' commits.
    await waitFor(async () => ((await metric(ctx, 'coldboard_readings_reconciled_units_total')) ?? 0) >= 2, 10_000, 'the reconciled units to be counted')
  })
})

describe('/health and /metrics report the evaluation queue (shared Redis, no worker, QUEUE_STALL_SECONDS=1)', () => {
  const ctx = useTestApp({ redis: true, env: { QUEUE_STALL_SECONDS: '1' } })

  it('reports waiting and failed jobs and the oldest waiting age, degraded once a job waits past QUEUE_STALL_SECONDS', async () => {
    const health = async () => {
      const res = await ctx.app.inject({ url: '/health' })
      expect(res.statusCode).toBe(200)
      return res.json() as { status: string, checks: { queue: Record<string, unknown> } }
    }
    const idle = await health()
    expect(idle.status).toBe('ok')
    expect(idle.checks.queue).toMatchObject({ ok: true, enabled: true, waiting: 0, failed: 0, oldestWaitingSeconds: 0 })
    expect(idle.checks.queue.warning).toBeUndefined()
    expect(await metric(ctx, 'coldboard_queue_jobs', '{state="waiting"}')).toBe(0)
    expect(await metric(ctx, 'coldboard_queue_oldest_waiting_seconds')).toBe(0)

    // One job out of retries: failed by a worker of the test's own, stopped before anything else is queued.
    const connection = { url: sharedRedisUrl }
    const queue = new Queue(INGESTION_QUEUE, { connection, prefix: ctx.app.config.queuePrefix })
    const worker = new Worker(INGESTION_QUEUE, async () => { throw new Error('database unavailable') }, { connection, prefix: ctx.app.config.queuePrefix })
    try {
      const job = await queue.add('process', { organizationId: '00000000-0000-4000-8000-000000000000', unitIds: [] }, { attempts: 1 })
      await waitFor(async () => (await job.getState()) === 'failed', 10_000, 'the job to fail')
    } finally {
      await worker.close()
      await queue.close()
    }

    // Readings accepted while no worker runs: their jobs wait.
    const fx = await ctx.org({ units: 3 })
    for (let i = 0; i < 3; i++) {
      const res = await ctx.ingest(fx, [{ deviceEui: fx.devices[i]!.deviceEui, temperature: 5, recordedAt: new Date(Date.now() - 60_000) }])
      expect(res.statusCode).toBe(202)
    }
    expect(await metric(ctx, 'coldboard_ingestion_batches_total', '{path="queue"}')).toBe(3)

    let stalled = await health()
    await waitFor(async () => { stalled = await health(); return stalled.status === 'degraded' }, 15_000, '/health to turn degraded')
    expect(stalled.checks.queue).toMatchObject({ ok: true, waiting: 3, failed: 1, warning: expect.stringMatching(/QUEUE_STALL_SECONDS/) })
    expect(stalled.checks.queue.oldestWaitingSeconds as number).toBeGreaterThan(1)

    expect(await metric(ctx, 'coldboard_queue_jobs', '{state="waiting"}')).toBe(3)
    expect(await metric(ctx, 'coldboard_queue_jobs', '{state="failed"}')).toBe(1)
    expect(await metric(ctx, 'coldboard_queue_jobs', '{state="active"}')).toBe(0)
    expect(await metric(ctx, 'coldboard_queue_jobs', '{state="delayed"}')).toBe(0)
    expect(await metric(ctx, 'coldboard_queue_oldest_waiting_seconds')).toBeGreaterThan(1)
  })
})
