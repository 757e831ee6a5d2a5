import { setTimeout as sleep } from 'node:timers/promises'
import { eq } from 'drizzle-orm'
import { Redis } from 'ioredis'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { App } from '../../../src/app.js'
import { devices, units } from '../../../src/db/schema.js'
import type { ChangeEvent } from '../../../src/features/changes/events.js'
import { open } from '../../../src/features/dashboard/envelope.js'
import type { QueryType } from '../../../src/features/dashboard/query-types.js'
import type { DashboardStats, DeviceCounts, UnitCounts } from '../../../src/features/dashboard/types.js'
import type { TestDatabase } from '../../helpers/db.js'
import { useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'
import { sharedRedisUrl, waitFor } from '../../helpers/redis.js'
import { metricTotal } from '../../helpers/metrics.js'

const unitUpdate = (organizationId: string, unitId: string): ChangeEvent => ({
  name: 'unitUpdate',
  payload: { organizationId, unitId, state: 'too_hot', previousState: 'normal', lastTemperature: 9, lastReadingAt: new Date().toISOString() }
})

const counter = (app: App, name: string, labels: Record<string, string>): Promise<number> =>
  metricTotal(app.metrics.registry.getSingleMetric(name), labels)
const loads = (app: App, queryType: QueryType) => counter(app, 'dashboard_db_load_total', { query_type: queryType })

describe('refresh on event: what an event deletes is reloaded before the emit', () => {
  // A generous wait, so that "reloaded before the emit" is deterministic on a busy test machine.
  const ctx = useTestApp({ redis: true, env: { CACHE_REFRESH_WAIT_MS: '1000' } })
  let admin: Redis
  let f: OrgFixture
  const statusUrl = (o: OrgFixture) => `/api/orgs/${o.org.id}/dashboard/units/status`
  const read = (o: OrgFixture, url: string) => ctx.app.inject({ url, headers: ctx.bearer({ [o.org.id]: 'viewer' }) })
  const setHot = (o: OrgFixture, unit: number) => ctx.db.update(units).set({ state: 'too_hot' }).where(eq(units.id, o.units[unit]!.id))
  /** The write path as every change takes it: commit, invalidate (and refresh), emit. */
  const publish = (events: ChangeEvent[]) => ctx.app.changes.commit(async () => ({ value: undefined, events }))

  beforeAll(async () => {
    admin = new Redis(sharedRedisUrl)
    f = await ctx.org({ units: 3 })
  })
  afterAll(() => { admin?.disconnect() })

  it('a watched entry is reloaded through the fence before the event goes out: the refetch is a fresh hit', async () => {
    expect((await read(f, statusUrl(f))).headers['x-cache']).toBe('miss')
    const key = ctx.app.dashboard.keys.entry({ queryType: 'units_status', orgId: f.org.id })
    const leftBefore = await admin.pttl(key)
    const before = await loads(ctx.app, 'units_status')
    const refreshed = await counter(ctx.app, 'dashboard_cache_refresh_total', { query_type: 'units_status', reason: 'event' })

    await setHot(f, 0)
    const seenAtEmit: Array<string | null> = []
    const emit = ctx.app.realtime.emit
    ctx.app.realtime.emit = (event) => { void admin.getBuffer(key).then((v) => seenAtEmit.push(v && open(v)!.body.toString())); emit(event) }
    try {
      await publish([unitUpdate(f.org.id, f.units[0]!.id)])
    } finally {
      ctx.app.realtime.emit = emit
    }
    await waitFor(() => seenAtEmit.length === 1, 5000, 'the entry as the emit found it')
    // At the emit, Redis already held the post-change value.
    expect((JSON.parse(seenAtEmit[0]!) as UnitCounts).too_hot).toBe(1)
    const after = await read(f, statusUrl(f))
    expect(after.headers['x-cache']).toBe('hit')
    expect(after.json<UnitCounts>().too_hot).toBe(1)
    expect(await loads(ctx.app, 'units_status') - before).toBe(1)
    expect(await counter(ctx.app, 'dashboard_cache_refresh_total', { query_type: 'units_status', reason: 'event' }) - refreshed).toBe(1)
    // The reload keeps the time the deleted entry had left: events keep an entry fresh, only reads keep it alive.
    expect(await admin.pttl(key)).toBeLessThanOrEqual(leftBefore)
  })

  it('an entry nobody read is not created by an event; an organization-wide change reloads only what was read', async () => {
    const g = await ctx.org({ units: 2 })
    const before = { status: await loads(ctx.app, 'units_status'), trends: await loads(ctx.app, 'temperature_trends'), stats: await loads(ctx.app, 'stats') }
    await publish([unitUpdate(g.org.id, g.units[0]!.id)])
    const k = ctx.app.dashboard.keys
    expect(await admin.exists(k.entry({ queryType: 'units_status', orgId: g.org.id }), k.entry({ queryType: 'stats', orgId: g.org.id }))).toBe(0)
    expect(await loads(ctx.app, 'units_status')).toBe(before.status)

    // Read the units panel and one trend, then an organization-wide change (a unit edit, say).
    await read(g, statusUrl(g))
    await read(g, `/api/orgs/${g.org.id}/units/${g.units[0]!.id}/temperature-trends`)
    await ctx.app.changes.commit(async () => ({ value: undefined, orgWide: [g.org.id] }))
    expect(await admin.exists(k.entry({ queryType: 'units_status', orgId: g.org.id }))).toBe(1)
    // A unit's trend is not reloaded by an organization-wide change (there may be thousands): it is read again on demand.
    expect(await admin.exists(k.entry({ queryType: 'temperature_trends', orgId: g.org.id, unitId: g.units[0]!.id }))).toBe(0)
    expect(await admin.exists(k.entry({ queryType: 'stats', orgId: g.org.id }))).toBe(0)
    expect(await loads(ctx.app, 'units_status') - before.status).toBe(2)
    expect(await loads(ctx.app, 'temperature_trends') - before.trends).toBe(1)
  })

  it("an event's reloads of one organization's count panels run one statement, the overview's, and each is fresh", async () => {
    const o = await ctx.org({ units: 2 })
    const overviewUrl = `/api/orgs/${o.org.id}/dashboard`
    const devicesUrl = `/api/orgs/${o.org.id}/dashboard/devices/online`
    await read(o, overviewUrl)
    await read(o, statusUrl(o))
    const before = { stats: await loads(ctx.app, 'stats'), status: await loads(ctx.app, 'units_status') }
    await setHot(o, 0)
    await publish([unitUpdate(o.org.id, o.units[0]!.id)])
    // Both entries were deleted and reloaded before the emit: by one statement, whose counts are both panels' figures.
    expect(await loads(ctx.app, 'stats') - before.stats).toBe(1)
    expect(await loads(ctx.app, 'units_status') - before.status).toBe(0)
    const overview = await read(o, overviewUrl)
    const status = await read(o, statusUrl(o))
    expect([overview.headers['x-cache'], status.headers['x-cache']]).toEqual(['hit', 'hit'])
    expect(overview.json<DashboardStats>().unitCounts.too_hot).toBe(1)
    // The same JSON as the panel's own query would give, key for key.
    expect(status.body).toBe(JSON.stringify(await ctx.app.dashboard.queries.unitsStatus(o.org.id)))

    // Without the overview among them: the same statement without the compliance figure.
    const onlineBefore = (await read(o, devicesUrl)).json<DeviceCounts>().online
    await admin.del(ctx.app.dashboard.keys.entry({ queryType: 'stats', orgId: o.org.id }))
    const before2 = { stats: await loads(ctx.app, 'stats'), status: await loads(ctx.app, 'units_status'), devices: await loads(ctx.app, 'devices_online') }
    await setHot(o, 1)
    await ctx.db.update(devices).set({ status: 'online' }).where(eq(devices.id, o.devices[0]!.id))
    await publish([unitUpdate(o.org.id, o.units[1]!.id), { name: 'deviceStatusChange', payload: { organizationId: o.org.id, deviceId: o.devices[0]!.id, unitId: o.units[0]!.id, status: 'online' } }])
    expect(await loads(ctx.app, 'stats') - before2.stats).toBe(1)
    expect(await loads(ctx.app, 'units_status') - before2.status).toBe(0)
    expect(await loads(ctx.app, 'devices_online') - before2.devices).toBe(0)
    const status2 = await read(o, statusUrl(o))
    const devices2 = await read(o, devicesUrl)
    expect([status2.headers['x-cache'], devices2.headers['x-cache']]).toEqual(['hit', 'hit'])
    expect(status2.json<UnitCounts>().too_hot).toBe(2)
    expect(devices2.json<DeviceCounts>().online).toBe(onlineBefore + 1)
    expect(devices2.body).toBe(JSON.stringify(await ctx.app.dashboard.queries.devicesOnline(o.org.id)))
    // The overview the event found missing was not created by it.
    expect(await admin.exists(ctx.app.dashboard.keys.entry({ queryType: 'stats', orgId: o.org.id }))).toBe(0)
  })

  /** The units panel is served from the cache, with the committed number of too-hot units. */
  async function expectFreshHit (o: OrgFixture, tooHot: number): Promise<void> {
    const res = await read(o, statusUrl(o))
    expect(res.headers['x-cache']).toBe('hit')
    expect(res.json<UnitCounts>().too_hot).toBe(tooHot)
  }

  /** Counts the invalidation scripts run for an organization (the real store's, called through). */
  /** `firstScriptMs`: the first script starts that much later (commits finishing meanwhile queue behind it). */
  async function countingScripts<T> (orgId: string, work: () => Promise<T>, firstScriptMs = 0): Promise<{ value: T, scripts: number }> {
    const store = ctx.app.cache
    const invalidate = store.invalidate
    const fence = ctx.app.dashboard.keys.fence(orgId)
    let scripts = 0
    store.invalidate = async (hashKey, fields, keys) => {
      if (hashKey === fence && scripts++ === 0 && firstScriptMs > 0) await sleep(firstScriptMs)
      return invalidate.call(store, hashKey, fields, keys)
    }
    try {
      return { value: await work(), scripts }
    } finally {
      store.invalidate = invalidate
    }
  }

  it('a burst of events for one organization reloads each entry once per script run, not once per event', async () => {
    const h = await ctx.org({ units: 3 })
    await read(h, statusUrl(h))
    const before = await loads(ctx.app, 'units_status')
    await setHot(h, 1)
    // Fifty events reach the invalidation step together (as fifty commits finishing at once would): the first runs
    // its script, the other 49 share the next one; the reload of the entry is shared, and redone once if fenced.
    const burst = Array.from({ length: 50 }, (_, i) => ({ organizationId: h.org.id, events: [unitUpdate(h.org.id, h.units[i % 3]!.id)], orgWide: false }))
    const { scripts } = await countingScripts(h.org.id, () => Promise.all(burst.map((p) => ctx.app.dashboard.readThrough.invalidate(p))))
    expect(scripts).toBe(2)
    expect(await loads(ctx.app, 'units_status') - before).toBeLessThanOrEqual(2)
    await expectFreshHit(h, 1)
  })

  it('an event that deletes what a reload has just stored, before that reload has finished, has it reloaded again', async () => {
    const h = await ctx.org({ units: 2 })
    await read(h, statusUrl(h))
    const key = ctx.app.dashboard.keys.entry({ queryType: 'units_status', orgId: h.org.id })
    const event = (unit: number) => ({ organizationId: h.org.id, events: [unitUpdate(h.org.id, h.units[unit]!.id)], orgWide: false })
    const store = ctx.app.cache
    const setFenced = store.setFenced
    let raced = false
    // The real store, called through; right after the first reload's value is stored (and before that reload
    // returns), a second change commits and its invalidation deletes the value. That invalidation's step finds the
    // first reload still running and waits for it (until CACHE_REFRESH_WAIT_MS), so the first reload must redo it.
    store.setFenced = async (...args) => {
      const stored = await setFenced.apply(store, args)
      if (!raced && args[1] === key && stored === 'stored') {
        raced = true
        await setHot(h, 1)
        await ctx.app.dashboard.readThrough.invalidate(event(1))
        expect(await admin.exists(key)).toBe(0)
      }
      return stored
    }
    try {
      await setHot(h, 0)
      await ctx.app.dashboard.readThrough.invalidate(event(0))
    } finally {
      store.setFenced = setFenced
    }
    expect(raced).toBe(true)
    // (Both steps stopped waiting after CACHE_REFRESH_WAIT_MS; the reload goes on.)
    await waitFor(async () => await admin.exists(key) === 1, 5000, 'the entry reloaded after the second change')
    await expectFreshHit(h, 2)
  })

  it('a reload slower than CACHE_REFRESH_WAIT_MS does not hold the emit: it goes on, and a viewer who comes meanwhile joins it', async () => {
    const h = await ctx.org({ units: 2 })
    await read(h, statusUrl(h))
    const key = ctx.app.dashboard.keys.entry({ queryType: 'units_status', orgId: h.org.id })
    await setHot(h, 0)
    const emitted: string[] = []
    const emit = ctx.app.realtime.emit
    ctx.app.realtime.emit = (event) => { emitted.push(event.name); emit(event) }
    // Another session holds a lock the units panel's query needs: the event's reload waits, as a slow load would.
    const blocker = new pg.Client({ connectionString: (ctx.database as TestDatabase).url })
    await blocker.connect()
    try {
      await blocker.query('begin')
      await blocker.query('lock table units in access exclusive mode')
      const coalesced = await counter(ctx.app, 'dashboard_cache_coalesced_total', { query_type: 'units_status' })
      // The step gives up CACHE_REFRESH_WAIT_MS after the COMMIT; the event goes out with the reload still blocked.
      await publish([unitUpdate(h.org.id, h.units[0]!.id)])
      expect(emitted).toEqual(['unitUpdate'])
      expect(await admin.exists(key)).toBe(0)
      // The viewer told by the event joins the reload in flight: neither a hit nor a load of its own.
      const refetch = read(h, statusUrl(h))
      await waitFor(async () => await counter(ctx.app, 'dashboard_cache_coalesced_total', { query_type: 'units_status' }) === coalesced + 1, 5000, 'the refetch joining the reload')
      await blocker.query('rollback')
      const res = await refetch
      expect(res.headers['x-cache']).toBe('miss')
      expect(res.json<UnitCounts>().too_hot).toBe(1)
    } finally {
      ctx.app.realtime.emit = emit
      await blocker.query('rollback').catch(() => {})
      await blocker.end()
    }
    await waitFor(async () => await admin.exists(key) === 1, 5000, 'the reload stored')
    await expectFreshHit(h, 1)
  })

  it('through the write path, commits finishing at different times cost at most one reload per script run', async () => {
    const h = await ctx.org({ units: 3 })
    await read(h, statusUrl(h))
    const before = await loads(ctx.app, 'units_status')
    await setHot(h, 2)
    // Fifty transactions share the pool, so their commits (and invalidations) come in waves; the first script is
    // held 100 ms, so that (however fast this machine runs the rest) commits finish while one is running.
    const { scripts } = await countingScripts(h.org.id, () => Promise.all(Array.from({ length: 50 }, (_, i) => publish([unitUpdate(h.org.id, h.units[i % 3]!.id)]))), 100)
    expect(scripts).toBeGreaterThan(0)
    expect(scripts).toBeLessThan(50)
    expect(await loads(ctx.app, 'units_status') - before).toBeLessThanOrEqual(scripts)
    // Whatever the waves, what the viewers read next is the committed state.
    expect((await read(h, statusUrl(h))).json<UnitCounts>().too_hot).toBe(1)
  })
})

describe('refresh ahead: an entry read near its expiry is reloaded in the background', () => {
  // A 4 s TTL: reads in its last second reload the entry; the compliance figure is recomputed past half its life.
  const ctx = useTestApp({ redis: true, env: { CACHE_TTL_SECONDS: '4' } })
  let admin: Redis
  let f: OrgFixture
  const overview = (o: OrgFixture) => ctx.app.inject({ url: `/api/orgs/${o.org.id}/dashboard`, headers: ctx.bearer({ [o.org.id]: 'viewer' }) })

  beforeAll(async () => {
    admin = new Redis(sharedRedisUrl)
    f = await ctx.org({ units: 2 })
  })
  afterAll(() => { admin?.disconnect() })

  it('a watched overview never expires and never makes a request wait for its compliance figure; an unread one expires', async () => {
    const k = ctx.app.dashboard.keys
    const entry = k.entry({ queryType: 'stats', orgId: f.org.id })
    const idle = await ctx.org({ units: 1 })
    expect((await overview(f)).headers['x-cache']).toBe('miss')
    expect((await overview(idle)).headers['x-cache']).toBe('miss')
    const complianceBefore = String(await admin.get(k.compliance(f.org.id)))
    const statsLoads = await loads(ctx.app, 'stats')

    // Past three quarters of the TTL: a hit, and behind it the entry and the compliance figure are reloaded.
    await sleep(3200)
    expect((await overview(f)).headers['x-cache']).toBe('hit')
    await waitFor(async () => await admin.pttl(entry) > 2500, 5000, 'the entry reloaded ahead of its expiry')
    await waitFor(async () => String(await admin.get(k.compliance(f.org.id))) !== complianceBefore, 5000, 'the compliance figure recomputed')
    // One statement, in the background: the overview's reload computed the figure past half its life as well.
    expect(await loads(ctx.app, 'stats') - statsLoads).toBe(1)
    expect(await counter(ctx.app, 'dashboard_cache_refresh_total', { query_type: 'stats', reason: 'ahead' })).toBeGreaterThanOrEqual(1)
    expect(await counter(ctx.app, 'dashboard_cache_refresh_total', { query_type: 'stats', reason: 'compliance' })).toBeGreaterThanOrEqual(1)

    // Past the first entry's expiry: the watched one is still a hit, the unread one is gone.
    await sleep(1500)
    expect((await overview(f)).headers['x-cache']).toBe('hit')
    expect(await admin.exists(k.entry({ queryType: 'stats', orgId: idle.org.id }))).toBe(0)
  })

  it("a page's count panels read near their expiry are reloaded by one statement, each with its own query's JSON", async () => {
    const g = await ctx.org({ units: 2 })
    const k = ctx.app.dashboard.keys
    const api = `/api/orgs/${g.org.id}/dashboard`
    const panels: Record<'stats' | 'units_status' | 'alerts_count' | 'devices_online', string> = {
      stats: api, units_status: `${api}/units/status`, alerts_count: `${api}/alerts/count`, devices_online: `${api}/devices/online`
    }
    const readAll = () => Promise.all(Object.values(panels).map((url) => ctx.app.inject({ url, headers: ctx.bearer({ [g.org.id]: 'viewer' }) })))
    expect((await readAll()).map((r) => r.headers['x-cache'])).toEqual(['miss', 'miss', 'miss', 'miss'])
    const before = Object.fromEntries(await Promise.all(Object.keys(panels).map(async (qt) => [qt, await loads(ctx.app, qt as QueryType)] as const)))

    // In their last quarter, read together as a page reads them: hits, and behind them one reload of all four.
    await sleep(3200)
    expect((await readAll()).map((r) => r.headers['x-cache'])).toEqual(['hit', 'hit', 'hit', 'hit'])
    for (const qt of Object.keys(panels) as Array<keyof typeof panels>) {
      await waitFor(async () => await admin.pttl(k.entry({ queryType: qt, orgId: g.org.id })) > 2500, 5000, `${qt} reloaded ahead of its expiry`)
    }
    expect(await loads(ctx.app, 'stats') - before.stats!).toBe(1)
    for (const qt of ['units_status', 'alerts_count', 'devices_online'] as const) expect(await loads(ctx.app, qt) - before[qt]!).toBe(0)
    const again = await readAll()
    expect(again.map((r) => r.headers['x-cache'])).toEqual(['hit', 'hit', 'hit', 'hit'])
    expect(again[1]!.body).toBe(JSON.stringify(await ctx.app.dashboard.queries.unitsStatus(g.org.id)))
    expect(again[2]!.body).toBe(JSON.stringify(await ctx.app.dashboard.queries.alertsCount(g.org.id)))
    expect(again[3]!.body).toBe(JSON.stringify(await ctx.app.dashboard.queries.devicesOnline(g.org.id)))
  })

  it("an organization's watched trends are reloaded ahead together: one statement, each with its own unit's JSON", async () => {
    const g = await ctx.org({ units: 3 })
    const k = ctx.app.dashboard.keys
    const trendUrl = (unit: number) => `/api/orgs/${g.org.id}/units/${g.units[unit]!.id}/temperature-trends`
    const read = (unit: number) => ctx.app.inject({ url: trendUrl(unit), headers: ctx.bearer({ [g.org.id]: 'viewer' }) })
    const trendKey = (unit: number) => k.entry({ queryType: 'temperature_trends', orgId: g.org.id, unitId: g.units[unit]!.id })
    const before = await loads(ctx.app, 'temperature_trends')
    // Two viewers watching two units at different phases; the third unit nobody reads.
    expect((await read(0)).headers['x-cache']).toBe('miss')
    await sleep(1500)
    expect((await read(1)).headers['x-cache']).toBe('miss')
    expect(await loads(ctx.app, 'temperature_trends') - before).toBe(2)

    // The first in its last quarter (the second has over half its life left): one statement reloads both.
    await sleep(1700)
    expect((await read(0)).headers['x-cache']).toBe('hit')
    for (const unit of [0, 1]) await waitFor(async () => await admin.pttl(trendKey(unit)) > 3000, 5000, `trend ${unit} reloaded`)
    expect(await loads(ctx.app, 'temperature_trends') - before).toBe(3)
    for (const unit of [0, 1]) {
      const r = await read(unit)
      expect(r.headers['x-cache']).toBe('hit')
      expect(JSON.parse(r.body)).toEqual(await ctx.app.dashboard.queries.temperatureTrends(g.org.id, g.units[unit]!.id))
    }
    expect(await admin.exists(trendKey(2))).toBe(0)
  })

  it('in-process copies answer through their reload window: one reload for two instances, and each picks up the new value from Redis', async () => {
    const peer = (await ctx.peer()).app
    const g = await ctx.org({ units: 1 })
    const key = ctx.app.dashboard.keys.entry({ queryType: 'units_status', orgId: g.org.id })
    const read = async (app: App) => {
      const res = await app.inject({ url: `/api/orgs/${g.org.id}/dashboard/units/status`, headers: ctx.bearer({ [g.org.id]: 'viewer' }) })
      expect(res.statusCode).toBe(200)
      return res.headers['x-cache']
    }
    const localHits = async (app: App) => counter(app, 'dashboard_cache_local_hit_total', { query_type: 'units_status' })
    const bothLoads = async () => await loads(ctx.app, 'units_status') + await loads(peer, 'units_status')
    expect(await read(ctx.app)).toBe('miss')
    // A Redis hit on each instance keeps a copy there.
    for (const app of [ctx.app, peer]) expect(await read(app)).toBe('hit')
    const loadsBefore = await bothLoads()
    const expiry = Date.now() + await admin.pttl(key)

    // In the last quarter: the copy answers, and one GET behind it finds the same entry near its expiry and reloads it.
    await sleep(3200)
    const hits = await localHits(ctx.app)
    expect(await read(ctx.app)).toBe('hit')
    expect(await localHits(ctx.app)).toBe(hits + 1)
    await waitFor(async () => Date.now() + await admin.pttl(key) > expiry + 2000, 5000, 'the entry reloaded ahead of its expiry')
    // The peer's copy, still the old one and in its window, answers too; its GET behind finds the newer value in Redis
    // and keeps it instead of reloading.
    const peerHits = await localHits(peer)
    expect(await read(peer)).toBe('hit')
    expect(await localHits(peer)).toBe(peerHits + 1)
    // Past the old value's expiry: the peer answers at once from its copy of the reloaded value, and so does the
    // reloading instance, whose copy is the value it stored.
    await sleep(Math.max(0, expiry - Date.now()) + 100)
    const peerBefore = await localHits(peer)
    expect(await read(peer)).toBe('hit')
    expect(await localHits(peer)).toBe(peerBefore + 1)
    const before = await localHits(ctx.app)
    expect(await read(ctx.app)).toBe('hit')
    expect(await read(ctx.app)).toBe('hit')
    expect(await localHits(ctx.app)).toBe(before + 2)
    // One load for both instances.
    expect(await bothLoads() - loadsBefore).toBe(1)
  })
})
