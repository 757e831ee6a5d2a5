import { setTimeout as sleep } from 'node:timers/promises'
import { eq } from 'drizzle-orm'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { App } from '../../../src/app.js'
import { units } from '../../../src/db/schema.js'
import { RECONCILE_GRACE_MS } from '../../../src/features/evaluation/service.js'
import { RECONNECT_CHECK_MS } from '../../../src/features/queue/ingestion-queue.js'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js'
import { buildTestApp, useTestApp, type TestContext } from '../../helpers/fixture.js'
import { createOrgFixture, type OrgFixture } from '../../helpers/fixtures.js'
import { startPrivateRedis, waitFor, type PrivateRedis } from '../../helpers/redis.js'

/**
 * The sweeper's watchdog (src/features/evaluation/service.ts `localUpkeep`): Redis answers, so readings are
 * queued, but no worker takes the jobs (every worker gone, or one stuck on a connection that looks ready, as
 * seen after a Redis Cluster outage). Past QUEUE_STALL_SECONDS the sweeper evaluates them in its own process,
 * and a worker of its own that took nothing meanwhile is replaced.
 */

const T0 = new Date('2030-05-01T12:00:00.000Z')

async function metric (ctx: TestContext, name: string, labels = ''): Promise<number> {
  const text = (await ctx.app.inject({ url: '/metrics' })).body
  const m = new RegExp(`^${name}${labels.replace(/[{}]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)
  return m ? Number(m[1]) : 0
}

async function unitState (ctx: TestContext, fx: OrgFixture, i: number) {
  return (await ctx.db.select().from(units).where(eq(units.id, fx.units[i]!.id)))[0]!
}

async function acceptOutOfRange (ctx: TestContext, fx: OrgFixture, i: number): Promise<void> {
  const res = await ctx.ingest(fx, [{ deviceEui: fx.devices[i]!.deviceEui, temperature: 12, recordedAt: new Date(ctx.clock.now().getTime() - 1000) }])
  expect(res.statusCode).toBe(202)
}

/** Until the oldest waiting job has waited past QUEUE_STALL_SECONDS (1 s here), by the queue's own count. */
async function untilStalled (ctx: TestContext): Promise<void> {
  await waitFor(async () => ((await ctx.app.queue!.stats())?.oldestWaitingSeconds ?? 0) > 1, 15_000, 'the oldest job to wait past QUEUE_STALL_SECONDS')
}

describe('no worker takes the jobs (shared Redis, QUEUE_STALL_SECONDS=1)', () => {
  const ctx = useTestApp({ redis: true, clock: T0, env: { QUEUE_STALL_SECONDS: '1' } })

  it('leaves the jobs to the queue until they wait past QUEUE_STALL_SECONDS, then evaluates their readings here', async () => {
    const fx = await ctx.org({ units: 2, tempMin: 2, tempMax: 8, createdAt: new Date(T0.getTime() - 3_600_000) })
    await acceptOutOfRange(ctx, fx, 0)
    expect(await metric(ctx, 'coldboard_ingestion_batches_total', '{path="queue"}')).toBe(1)

    // Queued a moment ago: the queue's business.
    expect(await ctx.app.evaluation.localUpkeep()).toBe('queue')
    expect(await unitState(ctx, fx, 0)).toMatchObject({ state: 'normal', lastReadingAt: null })
    expect(await metric(ctx, 'coldboard_local_upkeep_total', '{reason="stalled"}')).toBe(0)

    await untilStalled(ctx)
    // The reconciler takes readings older than its grace (younger ones may still be a moving queue's).
    ctx.clock.advance(RECONCILE_GRACE_MS + 1000)
    expect(await ctx.app.evaluation.localUpkeep()).toBe('stalled')
    expect(await unitState(ctx, fx, 0)).toMatchObject({ state: 'too_hot', lastTemperature: 12 })
    expect(ctx.emitted.some((e) => e.name === 'unitUpdate' && e.payload.unitId === fx.units[0]!.id)).toBe(true)
    expect(await unitState(ctx, fx, 1)).toMatchObject({ lastReadingAt: null })
    expect(await metric(ctx, 'coldboard_local_upkeep_total', '{reason="stalled"}')).toBe(1)
    // No worker of its own: nothing to replace.
    expect(await metric(ctx, 'coldboard_queue_worker_restarts_total')).toBe(0)
  })
})

describe("this process's worker stops taking jobs (shared Redis, QUEUE_STALL_SECONDS=1)", () => {
  const ctx = useTestApp({ redis: true, worker: true, clock: T0, env: { QUEUE_STALL_SECONDS: '1' } })

  it('is replaced by a new worker, which takes the waiting jobs', async () => {
    const fx = await ctx.org({ units: 2, tempMin: 2, tempMax: 8, createdAt: new Date(T0.getTime() - 3_600_000) })
    const [stuck] = ctx.app.queue!.workers()
    // A worker that takes no more jobs although Redis answers: what a worker stuck on a dead connection does.
    await stuck!.pause()
    await acceptOutOfRange(ctx, fx, 0)
    await untilStalled(ctx)

    expect(await ctx.app.evaluation.localUpkeep()).toBe('stalled')
    expect(await metric(ctx, 'coldboard_queue_worker_restarts_total')).toBe(1)
    const [replacement] = ctx.app.queue!.workers()
    expect(replacement).not.toBe(stuck)
    expect(stuck!.closing).not.toBeNull()
    // The reading is younger than the reconciler's grace: only the new worker can have evaluated it.
    await waitFor(async () => (await unitState(ctx, fx, 0)).state === 'too_hot', 15_000, 'the new worker to evaluate the queued reading')
    // The job's completion is recorded in Redis just after its evaluation committed: the queue drains a moment later.
    await waitFor(async () => { const s = await ctx.app.queue!.stats(); return s?.waiting === 0 && s.active === 0 }, 5000, 'the queue drained')

    // Working again: the next tick leaves everything to the queue.
    await acceptOutOfRange(ctx, fx, 1)
    await waitFor(async () => (await unitState(ctx, fx, 1)).state === 'too_hot', 15_000, 'the new worker to take a new job')
    expect(await ctx.app.evaluation.localUpkeep()).toBe('queue')
    expect(await metric(ctx, 'coldboard_queue_worker_restarts_total')).toBe(1)
  })
})

describe('two instances while no worker takes the jobs (shared Redis, QUEUE_STALL_SECONDS=1, SWEEP_INTERVAL_SECONDS=1)', () => {
  const ctx = useTestApp({ redis: true, clock: T0, env: { QUEUE_STALL_SECONDS: '1', SWEEP_INTERVAL_SECONDS: '1' } })

  it('one of them does the upkeep per sweep interval (a lease), the other leaves it; the lease lapses for the next tick', async () => {
    const peer = await ctx.peer({ env: { QUEUE_STALL_SECONDS: '1', SWEEP_INTERVAL_SECONDS: '1' } })
    const fx = await ctx.org({ units: 2, tempMin: 2, tempMax: 8, createdAt: new Date(T0.getTime() - 3_600_000) })
    await acceptOutOfRange(ctx, fx, 0)
    await untilStalled(ctx)
    ctx.clock.advance(RECONCILE_GRACE_MS + 1000)

    const first = await Promise.all([ctx.app.evaluation.localUpkeep(), peer.app.evaluation.localUpkeep()])
    expect([...first].sort()).toEqual(['elsewhere', 'stalled'])
    // Whichever did it, the reading was evaluated once, here or there.
    expect(await unitState(ctx, fx, 0)).toMatchObject({ state: 'too_hot', lastTemperature: 12 })

    // The lease lasts nine tenths of a sweep interval: by the next tick either may take it.
    await sleep(1000)
    const [holder, other] = first[0] === 'stalled' ? [ctx.app, peer.app] : [peer.app, ctx.app]
    expect(await other.evaluation.localUpkeep()).toBe('stalled')
    expect(await holder.evaluation.localUpkeep()).toBe('elsewhere')
  })
})

describe('a worker that takes no job after its connection came back (a private Redis, QUEUE_STALL_SECONDS=3600)', () => {
  let db: TestDatabase
  let redis: PrivateRedis
  let app: App
  beforeAll(async () => {
    db = await createTestDatabase()
    redis = await startPrivateRedis()
    // The stall watchdog is an hour away and no sweep timer runs: only the check after the reconnection acts here.
    app = await buildTestApp({ database: db, redis: redis.url, env: { QUEUE_STALL_SECONDS: '3600' }, worker: true })
    await app.ready()
    await waitFor(() => app.queue!.workers().length > 0, 10_000, 'the workers started')
  }, 60_000)
  afterAll(async () => {
    await app?.close()
    await redis?.stop()
    await db?.drop()
  })

  const restarts = async () => Number(/^coldboard_queue_worker_restarts_total (\S+)$/m.exec((await app.inject({ url: '/metrics' })).body)?.[1] ?? 0)
  const ingest = async (fx: OrgFixture, temperature: number, recordedAt: Date) => (await app.inject({
    method: 'POST',
    url: '/api/ingest/readings',
    headers: { 'x-api-key': fx.apiKey },
    payload: { readings: [{ deviceEui: fx.devices[0]!.deviceEui, temperature, recordedAt: recordedAt.toISOString() }] }
  })).statusCode
  /** Drops every client connection of the app (as a failover does); Redis keeps its data. */
  const dropConnections = async () => {
    const admin = new Redis(redis.url)
    try {
      await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    } finally {
      admin.disconnect()
    }
  }
  const stateOf = async (fx: OrgFixture) => (await db.db.select().from(units).where(eq(units.id, fx.units[0]!.id)))[0]!.state

  it('is replaced RECONNECT_CHECK_MS after the reconnection when a job waited all along, and the new worker takes the job', async () => {
    const fx = await createOrgFixture(db.db, { units: 1, tempMin: 2, tempMax: 8, createdAt: new Date(Date.now() - 3_600_000) })
    const [stuck] = app.queue!.workers()
    // A worker that takes no more jobs although its connection is ready again: what bullmq#3088 describes.
    await stuck!.pause()
    expect(await ingest(fx, 12, new Date(Date.now() - 1000))).toBe(202)
    expect(await restarts()).toBe(0)

    // Every client connection of the app dropped; the job still waits.
    await dropConnections()
    const dropped = Date.now()
    await waitFor(async () => await restarts() === 1, RECONNECT_CHECK_MS + 15_000, 'the worker replaced after its reconnection')
    expect(Date.now() - dropped).toBeGreaterThanOrEqual(RECONNECT_CHECK_MS - 1000)
    const [replacement] = app.queue!.workers()
    expect(replacement).not.toBe(stuck)
    // The reading is younger than the reconciler's grace and no sweeper runs: only the new worker can evaluate it.
    await waitFor(async () => await stateOf(fx) === 'too_hot', 15_000, 'the new worker to evaluate the queued reading')
    expect(await restarts()).toBe(1)

    // A healthy worker is left alone: connections dropped again, a reading queued meanwhile is taken at once.
    await dropConnections()
    await waitFor(() => app.queue!.ready(), 10_000, 'the queue connection back')
    expect(await ingest(fx, 5, new Date())).toBe(202)
    await waitFor(async () => await stateOf(fx) === 'normal', 15_000, 'the worker to evaluate the reading after the reconnection')
    await sleep(RECONNECT_CHECK_MS + 1000)
    expect(await restarts()).toBe(1)
    expect(app.queue!.workers()[0]).toBe(replacement)
  }, 60_000)
})
