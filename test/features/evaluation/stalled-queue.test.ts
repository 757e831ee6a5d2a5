import { setTimeout as sleep } from 'node:timers/promises'
import { eq } from 'drizzle-orm'
import { describe, expect, it } from 'vitest'
import { units } from '../../../src/db/schema.js'
import { RECONCILE_GRACE_MS } from '../../../src/features/evaluation/service.js'
import { useTestApp, type TestContext } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'
import { waitFor } from '../../helpers/redis.js'

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
    expect((await ctx.app.queue!.stats())).toMatchObject({ waiting: 0, active: 0 })

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
