import { eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { App } from '../../src/app.js'
import { units } from '../../src/db/schema.js'
import { useTestApp } from '../helpers/fixture.js'
import type { OrgFixture } from '../helpers/fixtures.js'
import { waitFor } from '../helpers/redis.js'
import { metricTotal } from '../helpers/metrics.js'

/**
 * The in-process copies (CACHE_LOCAL, docs/caching.md#in-process) across two instances on the shared Redis: they
 * listen on the connection Socket.io's adapter receives events on, and while that connection is away (an
 * invalidation may be missed) they are dropped and not used until the channel is heard again.
 */
describe('in-process copies in front of Redis', () => {
  // The reload after an event waits up to 1 s before the emit (the default 10 ms is a latency bound, and a loaded CI
  // machine can take longer): a test that reads right after a change then finds what the reload stored.
  const ctx = useTestApp({ redis: true, env: { CACHE_REFRESH_WAIT_MS: '1000' } })
  let peer: App
  let f: OrgFixture

  beforeAll(async () => {
    peer = (await ctx.peer()).app
    f = await ctx.org({ units: 2 })
  })
  afterAll(async () => {
    await ctx.app.db.update(units).set({ state: 'normal' }).where(eq(units.organizationId, f.org.id))
  })

  const get = async (app: App, path: string) => {
    const res = await app.inject({ url: `/api/orgs/${f.org.id}${path}`, headers: ctx.bearer({ [f.org.id]: 'viewer' }) })
    expect(res.statusCode).toBe(200)
    return { cache: res.headers['x-cache'], body: res.json() }
  }
  /** The unit-status panel: what it says of the too-hot units, and where it came from. */
  const read = async (app: App) => {
    const { cache, body } = await get(app, '/dashboard/units/status')
    return { cache, tooHot: body.too_hot as number }
  }
  const localHits = (app: App) => metricTotal(app.dashboard.metrics.localHit)
  /** A change committed on instance 1, through the write path (invalidation, publication, emit). */
  const setState = (state: 'normal' | 'too_hot') => ctx.app.changes.commit(async (tx) => {
    await tx.update(units).set({ state }).where(eq(units.id, f.units[0]!.id))
    return { value: null, orgWide: [f.org.id] }
  })

  /**
   * A unit's state change, as ingestion commits it on instance 1: a unitUpdate event, not an organization-wide change.
   * It deletes the overview, the unit-status counts and that unit's trend (query-types.ts), nothing else.
   */
  const unitUpdate = (state: 'normal' | 'too_hot', previousState: 'normal' | 'too_hot') => ctx.app.changes.commit(async (tx) => {
    await tx.update(units).set({ state }).where(eq(units.id, f.units[0]!.id))
    return {
      value: null,
      events: [{ name: 'unitUpdate' as const, payload: { organizationId: f.org.id, unitId: f.units[0]!.id, state, previousState, lastTemperature: null, lastReadingAt: null } }]
    }
  })

  it('one subscriber connection carries both the events and the invalidations (their order is what keeps the copies fresh)', () => {
    expect(peer.redis!.subscriber('cache-sub')).toBe(peer.redis!.subscriber('io-sub'))
  })

  it("a read answered by Redis is kept; the next is answered in-process; another instance's invalidation drops it", async () => {
    await read(peer)
    await read(peer)
    const before = await localHits(peer)
    expect(await read(peer)).toEqual({ cache: 'hit', tooHot: 0 })
    expect(await localHits(peer)).toBe(before + 1)
    await setState('too_hot')
    // The publication is handled on the peer's subscriber connection some time after the commit on instance 1.
    await waitFor(() => peer.dashboard.readThrough.localStats()!.entries === 0, 5000, 'the copy dropped')
    expect((await read(peer)).tooHot).toBe(1)
    await setState('normal')
  })

  it('while the subscriber connection is away the copies are dropped and unused; a change made meanwhile is never hidden', async () => {
    await read(peer)
    await read(peer)
    expect(peer.dashboard.readThrough.localStats()!.entries).toBeGreaterThan(0)
    const sub = peer.redis!.subscriber('io-sub')
    sub.disconnect(false)
    let before: number
    try {
      await waitFor(() => !peer.dashboard.readThrough.localStats()!.listening, 5000, 'the channel lost')
      expect(peer.dashboard.readThrough.localStats()).toMatchObject({ listening: false, entries: 0 })
      // An invalidation the peer cannot hear.
      await setState('too_hot')
      before = await localHits(peer)
      for (let i = 0; i < 3; i++) expect(await read(peer)).toEqual({ cache: 'hit', tooHot: 1 })
      expect(await localHits(peer)).toBe(before)
      expect(peer.dashboard.readThrough.localStats()!.entries).toBe(0)
    } finally {
      // Reconnected whatever happened above, so that a failure here does not leave the later tests without a channel.
      await sub.connect().catch(() => {})
    }
    await waitFor(() => peer.dashboard.readThrough.localStats()!.listening, 5000, 'the channel heard again')
    await read(peer)
    expect(await read(peer)).toEqual({ cache: 'hit', tooHot: 1 })
    expect(await localHits(peer)).toBe(before + 1)
    await setState('normal')
    await waitFor(async () => (await read(peer)).tooHot === 0, 5000, 'the invalidation heard after the reconnection')
  })

  it("an event drops only the copies of the entries it deleted: the organization's other panels still answer in-process", async () => {
    const trend = `/units/${f.units[1]!.id}/temperature-trends`
    const unaffected = ['/dashboard/devices/online', trend]
    for (const path of [...unaffected, '/dashboard/units/status']) { await get(peer, path); await get(peer, path) }
    const kept = peer.dashboard.readThrough.localStats()!.entries
    expect(kept).toBeGreaterThanOrEqual(3)
    await unitUpdate('too_hot', 'normal')
    await waitFor(() => peer.dashboard.readThrough.localStats()!.entries === kept - 1, 5000, 'the unit-status copy dropped')
    const before = await localHits(peer)
    for (const path of unaffected) expect((await get(peer, path)).cache).toBe('hit')
    expect(await localHits(peer)).toBe(before + unaffected.length)
    // The entry the event deleted is read afresh.
    expect((await read(peer)).tooHot).toBe(1)
    expect(await localHits(peer)).toBe(before + unaffected.length)
    await unitUpdate('normal', 'too_hot')
    await waitFor(async () => (await read(peer)).tooHot === 0, 5000, 'the second event heard')
  })

  it('the instance that reloads what an event deleted keeps the value it stored as its copy: the refetch after the event stays in-process', async () => {
    await read(ctx.app)
    await read(ctx.app)
    const held = ctx.app.dashboard.readThrough.localStats()!.entries
    await unitUpdate('too_hot', 'normal')
    // Dropped at the invalidation, then back once the reload (CACHE_REFRESH, on by default) has stored the new value,
    // with no read in between.
    await waitFor(() => ctx.app.dashboard.readThrough.localStats()!.entries === held, 5000, 'the reloaded value kept')
    const before = await localHits(ctx.app)
    expect(await read(ctx.app)).toEqual({ cache: 'hit', tooHot: 1 })
    expect(await localHits(ctx.app)).toBe(before + 1)
    await unitUpdate('normal', 'too_hot')
    await waitFor(async () => (await read(ctx.app)).tooHot === 0 && (await read(peer)).tooHot === 0, 5000, 'back to normal')
  })
})
