import { eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { App } from '../../src/app.js'
import { units } from '../../src/db/schema.js'
import { useTestApp } from '../helpers/fixture.js'
import type { OrgFixture } from '../helpers/fixtures.js'
import { waitFor } from '../helpers/redis.js'

/**
 * The in-process copies (CACHE_LOCAL, docs/caching.md#in-process) across two instances on the shared Redis: they
 * listen on the connection Socket.io's adapter receives events on, and while that connection is away (an
 * invalidation may be missed) they are dropped and not used until the channel is heard again.
 */
describe('in-process copies in front of Redis', () => {
  const ctx = useTestApp({ redis: true })
  let peer: App
  let f: OrgFixture

  beforeAll(async () => {
    peer = (await ctx.peer()).app
    f = await ctx.org({ units: 2 })
  })
  afterAll(async () => {
    await ctx.app.db.update(units).set({ state: 'normal' }).where(eq(units.organizationId, f.org.id))
  })

  const url = () => `/api/orgs/${f.org.id}/dashboard/units/status`
  const read = async (app: App) => {
    const res = await app.inject({ url: url(), headers: ctx.bearer({ [f.org.id]: 'viewer' }) })
    expect(res.statusCode).toBe(200)
    return { cache: res.headers['x-cache'], tooHot: res.json().too_hot as number }
  }
  const localHits = async (app: App) => (await app.dashboard.metrics.localHit.get()).values.reduce((n, v) => n + v.value, 0)
  /** A change committed on instance 1, through the write path (invalidation, publication, emit). */
  const setState = (state: 'normal' | 'too_hot') => ctx.app.changes.commit(async (tx) => {
    await tx.update(units).set({ state }).where(eq(units.id, f.units[0]!.id))
    return { value: null, orgWide: [f.org.id] }
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
    await waitFor(() => !peer.dashboard.readThrough.localStats()!.listening, 5000, 'the channel lost')
    expect(peer.dashboard.readThrough.localStats()).toMatchObject({ listening: false, entries: 0 })
    // An invalidation the peer cannot hear.
    await setState('too_hot')
    const before = await localHits(peer)
    for (let i = 0; i < 3; i++) expect(await read(peer)).toEqual({ cache: 'hit', tooHot: 1 })
    expect(await localHits(peer)).toBe(before)
    expect(peer.dashboard.readThrough.localStats()!.entries).toBe(0)
    await sub.connect()
    await waitFor(() => peer.dashboard.readThrough.localStats()!.listening, 5000, 'the channel heard again')
    await read(peer)
    expect(await read(peer)).toEqual({ cache: 'hit', tooHot: 1 })
    expect(await localHits(peer)).toBe(before + 1)
    await setState('normal')
    await waitFor(async () => (await read(peer)).tooHot === 0, 5000, 'the invalidation heard after the reconnection')
  })
})
