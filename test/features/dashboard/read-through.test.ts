import { randomUUID } from 'node:crypto'
import { gunzipSync } from 'node:zlib'
import { eq } from 'drizzle-orm'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { open } from '../../../src/features/dashboard/envelope.js'
import type { App } from '../../../src/app.js'
import { alerts, sensorReadings, units } from '../../../src/db/schema.js'
import { createInvalidator } from '../../../src/features/cache/invalidator.js'
import type { RedisClient } from '../../../src/infra/redis.js'
import { GROUP_WIDE_FIELD, MAX_KEYS_PER_CALL } from '../../../src/features/cache/store.js'
import type { ChangeEvent } from '../../../src/features/changes/events.js'
import { fenceField } from '../../../src/features/dashboard/keys.js'
import { createDashboardMetrics } from '../../../src/features/dashboard/metrics.js'
import type { DashboardQueryService } from '../../../src/features/dashboard/queries.js'
import type { Entry } from '../../../src/features/dashboard/query-types.js'
import { createReadThrough, organizationKeys, type ReadThrough } from '../../../src/features/dashboard/read-through.js'
import type { UnitCounts } from '../../../src/features/dashboard/types.js'
import { useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'
import { monitorCommands, sharedRedisUrl, waitFor } from '../../helpers/redis.js'

const unitUpdate = (organizationId: string, unitId: string, state: 'normal' | 'too_hot' | 'too_cold' = 'too_hot'): ChangeEvent => ({
  name: 'unitUpdate',
  payload: { organizationId, unitId, state, previousState: 'normal', lastTemperature: 9, lastReadingAt: new Date().toISOString() }
})

/** Every script call Redis receives for one fence hash (MONITOR): its keys after the fence, and its ARGV. */
async function watchScripts (url: string, fenceKey: string) {
  const calls: Array<{ keys: string[], argv: string[] }> = []
  const monitor = await monitorCommands(url, (args) => {
    if (!/^eval(sha)?$/i.test(args[0] ?? '') || args[3] !== fenceKey) return
    const n = Number(args[2])
    calls.push({ keys: args.slice(4, 3 + n), argv: args.slice(3 + n) })
  })
  return { calls, stop: monitor.stop }
}

// These two suites pin down plain cache-aside (what an event deletes, what a load stores, who joins whom), so the
// refresh that keeps watched entries warm is off here; test/features/dashboard/refresh.test.ts covers it.
const CACHE_ASIDE_ONLY = { CACHE_REFRESH: 'false' }

describe('dashboard read-through over HTTP (real Redis and PostgreSQL)', () => {
  const ctx = useTestApp({ redis: true, env: CACHE_ASIDE_ONLY })
  let admin: Redis
  let a: OrgFixture
  let b: OrgFixture
  const keys = () => ctx.app.dashboard.keys

  const urls = (f: OrgFixture) => ({
    stats: `/api/orgs/${f.org.id}/dashboard`,
    units_status: `/api/orgs/${f.org.id}/dashboard/units/status`,
    alerts_count: `/api/orgs/${f.org.id}/dashboard/alerts/count`,
    alerts_count_unit: `/api/orgs/${f.org.id}/dashboard/alerts/count?unitId=${f.units[0]!.id}`,
    devices_online: `/api/orgs/${f.org.id}/dashboard/devices/online`,
    temperature_trends: `/api/orgs/${f.org.id}/units/${f.units[0]!.id}/temperature-trends`
  })
  const entries = (f: OrgFixture): Record<keyof ReturnType<typeof urls>, Entry> => ({
    stats: { queryType: 'stats', orgId: f.org.id },
    units_status: { queryType: 'units_status', orgId: f.org.id },
    alerts_count: { queryType: 'alerts_count', orgId: f.org.id },
    alerts_count_unit: { queryType: 'alerts_count', orgId: f.org.id, unitId: f.units[0]!.id },
    devices_online: { queryType: 'devices_online', orgId: f.org.id },
    temperature_trends: { queryType: 'temperature_trends', orgId: f.org.id, unitId: f.units[0]!.id }
  })
  const get = (f: OrgFixture, url: string, headers: Record<string, string> = {}) =>
    ctx.app.inject({ url, headers: { ...ctx.bearer({ [f.org.id]: 'viewer' }), ...headers } })
  async function warmAll (f: OrgFixture) {
    for (const url of Object.values(urls(f))) expect((await get(f, url)).statusCode).toBe(200)
  }
  async function present (f: OrgFixture) {
    const out: Record<string, boolean> = {}
    for (const [name, e] of Object.entries(entries(f))) out[name] = (await admin.exists(keys().entry(e))) === 1
    return out
  }
  /** Every key carrying the organization's hash tag. */
  async function keysOf (orgId: string): Promise<string[]> {
    const found: string[] = []
    let cursor = '0'
    do {
      const [next, batch] = await admin.scan(cursor, 'MATCH', `${ctx.prefix}*{${orgId}}*`, 'COUNT', 1000)
      cursor = next
      found.push(...batch)
    } while (cursor !== '0')
    return found
  }
  const orgWide = (orgId: string) => ctx.app.dashboard.readThrough.invalidate({ organizationId: orgId, events: [], orgWide: true })
  const publish = (events: ChangeEvent[]) => ctx.app.changes.commit(async () => ({ value: undefined, events }))

  beforeAll(async () => {
    admin = new Redis(sharedRedisUrl)
    a = await ctx.org({ units: 3 })
    b = await ctx.org({ units: 2 })
  })
  afterAll(async () => {
    await ctx.app.cache.invalidatePattern(keys().pattern)
    admin?.disconnect()
  })
  beforeEach(async () => { for (const f of [a, b]) await orgWide(f.org.id) })

  it('builds keys under the prefix with the organization as hash tag, and refuses a key without a valid organization id', () => {
    const org = randomUUID()
    const unit = randomUUID()
    const p = ctx.prefix
    expect(keys().entry({ queryType: 'units_status', orgId: org })).toBe(`${p}dashboard:units:status:org:{${org}}`)
    expect(keys().entry({ queryType: 'alerts_count', orgId: org })).toBe(`${p}dashboard:alerts:count:org:{${org}}`)
    expect(keys().entry({ queryType: 'alerts_count', orgId: org, unitId: unit })).toBe(`${p}dashboard:alerts:count:org:{${org}}:unit:${unit}`)
    expect(keys().entry({ queryType: 'temperature_trends', orgId: org, unitId: unit })).toBe(`${p}dashboard:temperature:trends:org:{${org}}:unit:${unit}`)
    expect(keys().entry({ queryType: 'devices_online', orgId: org })).toBe(`${p}dashboard:devices:online:org:{${org}}`)
    expect(keys().entry({ queryType: 'stats', orgId: org })).toBe(`${p}dashboard:stats:org:{${org}}`)
    expect(keys().fence(org)).toBe(`${p}dashboard:gen:org:{${org}}`)
    expect(keys().compliance(org)).toBe(`${p}dashboard:stats:compliance:org:{${org}}`)
    expect(fenceField({ queryType: 'units_status', orgId: org })).toBe('units_status')
    expect(fenceField({ queryType: 'alerts_count', orgId: org, unitId: unit })).toBe(`alerts_count:${unit}`)
    expect(() => keys().entry({ queryType: 'stats', orgId: '' })).toThrow(/organization id/)
    expect(() => keys().entry({ queryType: 'stats', orgId: 'undefined' })).toThrow(/organization id/)
    expect(() => keys().entry({ queryType: 'stats', orgId: org.toUpperCase() })).toThrow(/lower-case organization id/)
    expect(() => keys().fence('')).toThrow(/organization id/)
    expect(() => keys().compliance('nope')).toThrow(/organization id/)
    expect(() => keys().entry({ queryType: 'temperature_trends', orgId: org })).toThrow(/unit id/)
    expect(() => keys().entry({ queryType: 'units_status', orgId: org, unitId: unit })).toThrow(/no unit/)
    expect(() => keys().entry({ queryType: 'alerts_count', orgId: org, unitId: 'nope' })).toThrow(/bad unit id/)
  })

  it('misses, then hits with the same body, under the documented key names, each with the TTL', async () => {
    for (const [name, url] of Object.entries(urls(a))) {
      const first = await get(a, url)
      expect(first.statusCode, name).toBe(200)
      expect(first.headers['x-cache'], name).toBe('miss')
      const second = await get(a, url)
      expect(second.headers['x-cache'], name).toBe('hit')
      expect(second.body, name).toBe(first.body)
      expect(second.headers['content-type']).toMatch(/^application\/json/)
      const key = keys().entry(entries(a)[name as keyof ReturnType<typeof urls>])
      const ttl = await admin.ttl(key)
      expect(ttl, key).toBeGreaterThan(50)
      expect(ttl, key).toBeLessThanOrEqual(60)
    }
    expect((await get(a, urls(a).units_status)).json()).toEqual({ total: 3, normal: 3, too_hot: 0, too_cold: 0, offline: 0 })
  })

  it('Cache-Control: no-cache bypasses the stored copy and refreshes it', async () => {
    await get(a, urls(a).units_status)
    await ctx.db.update(units).set({ state: 'too_hot' }).where(eq(units.id, a.units[1]!.id))
    expect((await get(a, urls(a).units_status)).json().too_hot).toBe(0) // stored copy, no event was published
    const forced = await get(a, urls(a).units_status, { 'cache-control': 'no-cache' })
    expect(forced.headers['x-cache']).toBe('bypass')
    expect(forced.json().too_hot).toBe(1)
    const after = await get(a, urls(a).units_status)
    expect(after.headers['x-cache']).toBe('hit')
    expect(after.json().too_hot).toBe(1)
    await ctx.db.update(units).set({ state: 'normal' }).where(eq(units.id, a.units[1]!.id))
  })

  it('each event type removes exactly what it changes, before it is emitted', async () => {
    const unitId = a.units[0]!.id
    const cases: Array<{ event: ChangeEvent, gone: string[] }> = [
      { event: unitUpdate(a.org.id, unitId), gone: ['stats', 'units_status', 'temperature_trends'] },
      ...(['alertCreated', 'alertAcknowledged', 'alertResolved', 'alertEscalated'] as const).map((name) => ({
        event: { name, payload: { organizationId: a.org.id, alertId: unitId, unitId, type: 'temperature_excursion' as const, severity: 'warning' as const, status: 'active' as const } },
        gone: ['stats', 'alerts_count', 'alerts_count_unit']
      })),
      {
        event: { name: 'deviceStatusChange', payload: { organizationId: a.org.id, deviceId: a.devices[0]!.id, unitId, status: 'offline' } },
        gone: ['stats', 'devices_online']
      }
    ]
    // The real emitter, observed at the moment the write path calls it.
    const emit = ctx.app.realtime.emit
    try {
      for (const c of cases) {
        await warmAll(a)
        let seenAtEmit: Record<string, boolean> | null = null
        const pending: Array<Promise<void>> = []
        ctx.app.realtime.emit = (e) => {
          if (e === c.event) pending.push((async () => { seenAtEmit = await present(a) })())
          emit(e)
        }
        await publish([c.event])
        await Promise.all(pending)
        expect(seenAtEmit, c.event.name).not.toBeNull()
        for (const [name, exists] of Object.entries(seenAtEmit!)) {
          expect(exists, `${c.event.name}: ${name}`).toBe(!c.gone.includes(name))
        }
      }
    } finally {
      ctx.app.realtime.emit = emit
    }
  })

  it('keeps tenants apart: A\'s invalidation leaves B\'s keys, A\'s token never reads B\'s entries', async () => {
    await warmAll(a)
    await warmAll(b)
    await publish([unitUpdate(a.org.id, a.units[0]!.id, 'too_cold')])
    await orgWide(a.org.id)
    expect(Object.values(await present(b)).every(Boolean)).toBe(true)
    expect(Object.values(await present(a)).some(Boolean)).toBe(false)
    for (const url of Object.values(urls(b))) {
      const res = await ctx.app.inject({ url, headers: ctx.bearer({ [a.org.id]: 'owner' }) })
      expect(res.statusCode, url).toBe(403)
      expect(res.json().error.code).toBe('FORBIDDEN')
    }
    // A's unit through B's organization is not found, never served from A's entry.
    const cross = await get(b, `/api/orgs/${b.org.id}/units/${a.units[0]!.id}/temperature-trends`)
    expect(cross.statusCode).toBe(404)
  })

  it('an organization-wide invalidation deletes every per-unit key of the organization\'s units, and nothing of another; no index key exists', async () => {
    await warmAll(b)
    const perUnit = (f: OrgFixture) => f.units.flatMap((u) => [
      keys().entry({ queryType: 'temperature_trends', orgId: f.org.id, unitId: u.id }),
      keys().entry({ queryType: 'alerts_count', orgId: f.org.id, unitId: u.id })
    ])
    for (const u of a.units) {
      expect((await get(a, `/api/orgs/${a.org.id}/units/${u.id}/temperature-trends`)).statusCode).toBe(200)
      expect((await get(a, `/api/orgs/${a.org.id}/dashboard/alerts/count?unitId=${u.id}`)).statusCode).toBe(200)
    }
    await warmAll(a)
    expect(await admin.exists(...perUnit(a))).toBe(perUnit(a).length)
    // Nothing but the key schema's own keys: the entries, the compliance figure and the fence hash (no index of units).
    const schema = new Set([...organizationKeys(keys(), a.org.id, a.units.map((u) => u.id)), keys().fence(a.org.id)])
    expect((await keysOf(a.org.id)).filter((k) => !schema.has(k))).toEqual([])
    const indexes: string[] = []
    let cursor = '0'
    do {
      const [next, found] = await admin.scan(cursor, 'MATCH', `${ctx.prefix}dashboard:idx:*`, 'COUNT', 10_000)
      cursor = next
      indexes.push(...found)
    } while (cursor !== '0')
    expect(indexes).toEqual([])

    const star = await admin.hget(keys().fence(a.org.id), GROUP_WIDE_FIELD)
    await orgWide(a.org.id)
    expect(await admin.exists(...perUnit(a))).toBe(0)
    expect(await keysOf(a.org.id)).toEqual([keys().fence(a.org.id)])
    expect(await admin.hget(keys().fence(a.org.id), GROUP_WIDE_FIELD)).not.toBe(star)
    expect(Object.values(await present(b)).every(Boolean)).toBe(true)
  })

  it('an organization-wide invalidation of a large organization deletes its keys in script calls of at most MAX_KEYS_PER_CALL keys', async () => {
    const big = await ctx.org({ units: 600 })
    const all = organizationKeys(keys(), big.org.id, big.units.map((u) => u.id))
    expect(all.length).toBeGreaterThan(2 * MAX_KEYS_PER_CALL)
    await admin.mset(...all.flatMap((k) => [k, '{}']))
    await orgWide(b.org.id) // the script is loaded before MONITOR starts
    const watch = await watchScripts(sharedRedisUrl, keys().fence(big.org.id))
    try {
      await orgWide(big.org.id)
      await waitFor(() => watch.calls.reduce((n, c) => n + c.keys.length, 0) >= all.length, 5000, 'the script calls seen by MONITOR')
      expect(watch.calls).toHaveLength(Math.ceil(all.length / MAX_KEYS_PER_CALL))
      for (const c of watch.calls) expect(c.keys.length).toBeLessThanOrEqual(MAX_KEYS_PER_CALL)
      expect(new Set(watch.calls.flatMap((c) => c.keys))).toEqual(new Set(all))
      expect(watch.calls[0]!.argv.slice(4)).toEqual([GROUP_WIDE_FIELD]) // the fence moves in the first call
      // The announcement on the invalidation channel goes out in the last call, once every entry is gone.
      expect(watch.calls.map((c) => c.argv[2] !== '')).toEqual(watch.calls.map((_, i) => i === watch.calls.length - 1))
    } finally {
      watch.stop()
    }
    expect(await admin.exists(...all)).toBe(0)
  })

  it('serves a garbage value as a miss, counts it, and replaces it', async () => {
    const key = keys().entry(entries(a).devices_online)
    const corrupt = async () => (await ctx.app.cache.metrics.errors.get()).values.find((v) => v.labels.operation === 'corrupt')?.value ?? 0
    await admin.set(key, 'garbage', 'EX', 60)
    const before = await corrupt()
    const res = await get(a, urls(a).devices_online)
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-cache']).toBe('miss')
    expect(res.json()).toEqual({ total: 3, online: 0, offline: 3 })
    expect(await corrupt()).toBe(before + 1)
    expect(JSON.parse(open((await admin.getBuffer(key))!)!.body.toString())).toEqual(res.json())
  })

  it('moves hit, miss, bypass and db-load counters exactly as a scripted sequence says', async () => {
    const metric = async (name: string, labels: Record<string, string>) => {
      const text = (await ctx.app.inject({ url: '/metrics' })).body
      const sel = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')
      const line = text.split('\n').find((l) => l.startsWith(`${name}{${sel}}`))
      return line ? Number(line.split(' ').pop()) : 0
    }
    const snapshot = async () => ({
      hit: await metric('dashboard_cache_hit_total', { query_type: 'devices_online' }),
      miss: await metric('dashboard_cache_miss_total', { query_type: 'devices_online' }),
      load: await metric('dashboard_db_load_total', { query_type: 'devices_online' }),
      refresh: await metric('dashboard_cache_bypass_total', { query_type: 'devices_online', reason: 'refresh' })
    })
    const before = await snapshot()
    await get(a, urls(a).devices_online) // miss + load
    await get(a, urls(a).devices_online) // hit
    await get(a, urls(a).devices_online) // hit
    await get(a, urls(a).devices_online, { 'cache-control': 'no-cache' }) // bypass + load
    await publish([{ name: 'deviceStatusChange', payload: { organizationId: a.org.id, deviceId: a.devices[0]!.id, unitId: a.units[0]!.id, status: 'online' } }])
    await get(a, urls(a).devices_online) // miss + load
    const after = await snapshot()
    expect(after.hit - before.hit).toBe(2)
    expect(after.miss - before.miss).toBe(2)
    expect(after.load - before.load).toBe(3)
    expect(after.refresh - before.refresh).toBe(1)
    const text = (await ctx.app.inject({ url: '/metrics' })).body
    for (const name of ['dashboard_cache_error_total', 'dashboard_cache_latency_seconds_bucket', 'dashboard_cache_invalidation_seconds_bucket']) {
      expect(text).toContain(name)
    }
    expect(text).not.toMatch(/org(anization)?_?id="/)
  })

  it('counts reads that joined a load in flight as coalesced: neither hits nor misses, and no load of their own', async () => {
    const metric = async (name: string) => {
      const text = (await ctx.app.inject({ url: '/metrics' })).body
      const line = text.split('\n').find((l) => l.startsWith(`${name}{query_type="alerts_count"}`))
      return line ? Number(line.split(' ').pop()) : 0
    }
    const names = ['dashboard_cache_hit_total', 'dashboard_cache_miss_total', 'dashboard_cache_coalesced_total', 'dashboard_db_load_total']
    const snapshot = async () => Promise.all(names.map(metric))
    const before = await snapshot()
    // Eight viewers at once on a cold entry: one loads, seven wait for that load.
    const answers = await Promise.all(Array.from({ length: 8 }, async () => get(a, urls(a).alerts_count)))
    const [hit = 0, miss = 0, coalesced = 0, load = 0] = (await snapshot()).map((v, i) => v - before[i]!)
    expect(answers.map((r) => r.statusCode)).toEqual(Array(8).fill(200))
    expect(new Set(answers.map((r) => r.body)).size).toBe(1)
    expect({ miss, load, joinedOrHit: hit + coalesced }).toEqual({ miss: 1, load: 1, joinedOrHit: 7 })
    // On a slow machine a late reader may find the stored entry (a hit); the others joined the load.
    expect(coalesced).toBeGreaterThanOrEqual(5)
  })

  it('answers 404 for a unit that is not the organization\'s and 400 for a malformed id, caching nothing', async () => {
    const stranger = randomUUID()
    const res = await get(a, `/api/orgs/${a.org.id}/units/${b.units[0]!.id}/temperature-trends`)
    expect(res.statusCode).toBe(404)
    expect(await admin.exists(keys().entry({ queryType: 'temperature_trends', orgId: a.org.id, unitId: b.units[0]!.id }))).toBe(0)
    // A per-unit alert count of a unit the organization does not have: 404, and nothing stored for that id.
    for (const unitId of [b.units[0]!.id, stranger]) {
      for (const headers of [{}, { 'cache-control': 'no-cache' }] as Array<Record<string, string>>) {
        const count = await get(a, `/api/orgs/${a.org.id}/dashboard/alerts/count?unitId=${unitId}`, headers)
        expect(count.statusCode, unitId).toBe(404)
        expect(count.json().error.code).toBe('NOT_FOUND')
      }
      expect(await admin.exists(keys().entry({ queryType: 'alerts_count', orgId: a.org.id, unitId }))).toBe(0)
      expect((await keysOf(a.org.id)).filter((k) => k.includes(unitId))).toEqual([])
      expect(await admin.hexists(keys().fence(a.org.id), `alerts_count:${unitId}`)).toBe(0)
    }
    expect((await get(a, `/api/orgs/${a.org.id}/units/not-a-uuid/temperature-trends`)).statusCode).toBe(400)
    expect((await get(a, `/api/orgs/${a.org.id}/dashboard/alerts/count?unitId=nope`)).statusCode).toBe(400)
  })

  it('reports redis, cache and queue in /health with the eviction policy', async () => {
    const res = await ctx.app.inject({ url: '/health' })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body.status).toBe('ok')
    expect(body.checks.redis.ok).toBe(true)
    expect(body.checks.cache).toMatchObject({ ok: true, enabled: true, ttlSeconds: 60 })
    expect(body.checks.queue.ok).toBe(true)
    expect(typeof body.checks.redis.maxmemoryPolicy === 'string' || body.checks.redis.maxmemoryPolicy === null).toBe(true)
  })

  it('a management write (a new unit, a new device) drops the organization\'s cached counts', async () => {
    const manager = ctx.bearer({ [b.org.id]: 'manager' })
    const before = (await get(b, urls(b).units_status)).json().total
    expect((await get(b, urls(b).units_status)).headers['x-cache']).toBe('hit')
    const created = await ctx.app.inject({
      method: 'POST',
      url: `/api/orgs/${b.org.id}/units`,
      headers: manager,
      payload: { siteId: b.site.id, name: 'Extra', unitType: 'freezer', tempMin: -25, tempMax: -15 }
    })
    expect(created.statusCode).toBe(201)
    const after = await get(b, urls(b).units_status)
    expect(after.headers['x-cache']).toBe('miss')
    expect(after.json().total).toBe(before + 1)
    const devicesBefore = (await get(b, urls(b).devices_online)).json().total
    const device = await ctx.app.inject({
      method: 'POST',
      url: `/api/orgs/${b.org.id}/devices`,
      headers: manager,
      payload: { unitId: created.json().id, deviceEui: `eui-extra-${b.org.id}` }
    })
    expect(device.statusCode).toBe(201)
    expect((await get(b, urls(b).devices_online)).json().total).toBe(devicesBefore + 1)
  })

  it('an event reloads the overview\'s counts but not its compliance figure, which lives by TTL alone', async () => {
    const loads = async () => (await ctx.app.dashboard.metrics.dbLoad.get()).values.find((v) => v.labels.query_type === 'stats')?.value ?? 0
    const first = await get(a, urls(a).stats)
    expect(first.headers['x-cache']).toBe('miss')
    const ttl = await admin.ttl(keys().compliance(a.org.id))
    expect(ttl).toBeGreaterThan(50)
    expect(ttl).toBeLessThanOrEqual(60)
    const before = await loads()
    await publish([unitUpdate(a.org.id, a.units[0]!.id, 'normal')])
    const again = await get(a, urls(a).stats)
    expect(again.headers['x-cache']).toBe('miss')
    expect(await loads() - before).toBe(1) // the counts; compliance came from its own entry
    expect(again.json().compliancePercentage).toBe(first.json().compliancePercentage)
    await orgWide(a.org.id) // an organization-wide invalidation drops it too
    expect(await admin.exists(keys().compliance(a.org.id))).toBe(0)
  })

  it('stores a large entry (a full 24 h trend) gzip-compressed and serves it compressed or inflated', async () => {
    const unit = a.units[1]!
    const now = Date.now()
    await ctx.db.insert(sensorReadings).values(Array.from({ length: 1430 }, (_, i) => ({
      organizationId: a.org.id,
      unitId: unit.id,
      deviceId: a.devices[1]!.id,
      temperature: 4 + (i % 7) / 10,
      recordedAt: new Date(now - (i + 1) * 60_000)
    })))
    const url = `/api/orgs/${a.org.id}/units/${unit.id}/temperature-trends`
    const miss = await get(a, url)
    expect(miss.headers['x-cache']).toBe('miss')
    const expected = miss.json()
    expect(expected.points.length).toBeGreaterThan(280)
    const stored = open((await admin.getBuffer(keys().entry({ queryType: 'temperature_trends', orgId: a.org.id, unitId: unit.id })))!)
    expect(stored!.gzip).toBe(true)
    expect(stored!.body[0]).toBe(0x1f)
    expect(stored!.body.length * 5).toBeLessThan(Buffer.byteLength(miss.body)) // at least 5× smaller in Redis
    const zipped = await get(a, url, { 'accept-encoding': 'gzip, br' })
    expect(zipped.headers['x-cache']).toBe('hit')
    expect(zipped.headers['content-encoding']).toBe('gzip')
    expect(JSON.parse(gunzipSync(zipped.rawPayload).toString())).toEqual(expected)
    const plain = await get(a, url)
    expect(plain.headers['x-cache']).toBe('hit')
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(plain.json()).toEqual(expected)
  })

  it('alert count fixture sanity: an open critical alert is counted', async () => {
    await ctx.db.insert(alerts).values({ organizationId: a.org.id, unitId: a.units[2]!.id, type: 'temperature_excursion', severity: 'critical', triggerTemperature: 9, threshold: 'temp_max' })
    await publish([{ name: 'alertCreated', payload: { organizationId: a.org.id, alertId: a.units[2]!.id, unitId: a.units[2]!.id, type: 'temperature_excursion', severity: 'critical', status: 'active' } }])
    expect((await get(a, urls(a).alerts_count)).json()).toEqual({ unresolved: 1, acknowledged: 0, critical: 1 })
  })
})

/** A gate the loader waits at: the test decides when a load that already read PostgreSQL may finish. */
function gate () {
  let open!: () => void
  let arrived!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  const reached = new Promise<void>((resolve) => { arrived = resolve })
  return { open, opened, reached, arrive: arrived }
}
type Gate = ReturnType<typeof gate>

/** Lets a test hold the next units_status load between reading PostgreSQL and returning (the barrier the races need, no sleeps). */
function holdable (queries: DashboardQueryService): () => Gate {
  const real = queries.unitsStatus.bind(queries)
  let hold: Gate | null = null
  queries.unitsStatus = async (orgId: string): Promise<UnitCounts> => {
    const value = await real(orgId)
    const g = hold
    if (g) { hold = null; g.arrive(); await g.opened }
    return value
  }
  return () => { hold = gate(); return hold }
}

interface Instance { rt: ReadThrough, loads: () => Promise<number>, holdNextLoad: () => Gate }
const loadsOf = (metrics: ReturnType<typeof createDashboardMetrics>) => async () =>
  (await metrics.dbLoad.get()).values.find((v) => v.labels.query_type === 'units_status')?.value ?? 0

describe('fenced writes and single-flight across an invalidation', () => {
  const ctx = useTestApp({ redis: true, env: CACHE_ASIDE_ONLY })
  let f: OrgFixture
  let admin: Redis
  /** This app's read-through, and another instance's (a peer on the same database, Redis and prefix). */
  let i1: Instance
  let i2: Instance
  /** A read-through whose cache:invalidate messages never arrive (it does not subscribe). */
  let deaf: Instance
  /** A read-through with a subscriber connection of its own, which a test kills. */
  let listening: Instance & { sub: RedisClient, subId: number }
  const closers: Array<() => void> = []
  const entry = () => ({ queryType: 'units_status' as const, orgId: f.org.id })
  const setHot = (n: number) => ctx.db.update(units).set({ state: n > 0 ? 'too_hot' : 'normal' }).where(eq(units.id, f.units[0]!.id))
  const hot = (r: { body: string | Buffer } | null) => (JSON.parse(r!.body.toString()) as UnitCounts).too_hot
  /** The change a unitUpdate announces: units_status is among what it invalidates. */
  const changed = (i: Instance) => i.rt.invalidate({ organizationId: f.org.id, events: [unitUpdate(f.org.id, f.units[0]!.id)], orgWide: false })

  function fromApp (app: App): Instance {
    return { rt: app.dashboard.readThrough, loads: loadsOf(app.dashboard.metrics), holdNextLoad: holdable(app.dashboard.queries) }
  }
  /** The read-through as the dashboard plugin assembles it (src/features/dashboard/index.ts), over this app's store. */
  function handBuilt (app: App, subscriber: RedisClient | null): Instance {
    const keys = app.dashboard.keys
    const queries = { ...app.dashboard.queries }
    const metrics = createDashboardMetrics(new Registry())
    const invalidator = createInvalidator({
      store: app.cache,
      channel: `${app.config.REDIS_KEY_PREFIX}cache:invalidate`,
      subscriber,
      fenceKey: keys.fence,
      groupKeys: async (orgId) => organizationKeys(keys, orgId, await queries.unitIds(orgId)),
      log: app.log
    })
    const rt = createReadThrough({ store: app.cache, invalidator, keys, queries, metrics, log: app.log })
    closers.push(() => rt.close())
    return { rt, loads: loadsOf(metrics), holdNextLoad: holdable(queries) }
  }

  beforeAll(async () => {
    f = await ctx.org({ units: 2 })
    admin = new Redis(sharedRedisUrl)
    // The hand-built ones copy the queries before the apps' own are made holdable.
    deaf = handBuilt(ctx.app, null)
    const sub = ctx.app.redis!.connection('cache-sub')
    await waitFor(() => sub.status === 'ready', 5000, 'subscriber connection')
    const subId = Number(await sub.client('ID'))
    listening = { ...handBuilt(ctx.app, sub), sub, subId }
    i1 = fromApp(ctx.app)
    i2 = fromApp((await ctx.peer()).app)
  })
  afterAll(async () => {
    for (const close of closers) close()
    await admin?.unlink(ctx.app.dashboard.keys.entry(entry()), ctx.app.dashboard.keys.fence(f.org.id))
    admin?.disconnect()
  })

  async function reset () {
    await setHot(0)
    await i1.rt.invalidate({ organizationId: f.org.id, events: [], orgWide: true })
  }

  it('a load that read PostgreSQL before a change never writes its result back after the invalidation', async () => {
    await reset()
    const g = i1.holdNextLoad()
    const slow = i1.rt.read(entry())
    await g.reached // the loader has read too_hot = 0 from PostgreSQL
    await setHot(1)
    await changed(i2) // another instance commits and invalidates
    g.open()
    expect(hot(await slow)).toBe(0) // that request began before the change: allowed to see it
    expect(await admin.exists(ctx.app.dashboard.keys.entry(entry()))).toBe(0) // …but the stale value was not stored
    const next = await i1.rt.read(entry())
    expect(next?.cache).toBe('miss')
    expect(hot(next)).toBe(1)
  })

  it('200 concurrent requests for a cold key cost one PostgreSQL load', async () => {
    await reset()
    const before = await i1.loads()
    const results = await Promise.all(Array.from({ length: 200 }, () => i1.rt.read(entry())))
    expect(await i1.loads() - before).toBe(1)
    expect(new Set(results.map((r) => r!.body.toString())).size).toBe(1)
    expect(results.filter((r) => r!.cache === 'miss')).toHaveLength(200)
  })

  it('concurrent Cache-Control: no-cache refreshes share one load too', async () => {
    await reset()
    await i1.rt.read(entry())
    const before = await i1.loads()
    const results = await Promise.all(Array.from({ length: 50 }, () => i1.rt.read(entry(), { refresh: true })))
    expect(await i1.loads() - before).toBe(1)
    expect(results.every((r) => r!.cache === 'bypass')).toBe(true)
  })

  it('a request that starts after a local invalidation does not join the load that began before it', async () => {
    await reset()
    const before = await i1.loads()
    const g = i1.holdNextLoad()
    const early = i1.rt.read(entry())
    await g.reached
    await setHot(1)
    await changed(i1)
    const late = i1.rt.read(entry()) // starts after the invalidation
    expect(hot(await late)).toBe(1)
    g.open()
    expect(hot(await early)).toBe(0)
    expect(await i1.loads() - before).toBe(2)
  })

  it('…nor one on another instance, even before that instance hears of it on cache:invalidate', async () => {
    await reset()
    const g = deaf.holdNextLoad()
    const early = deaf.rt.read(entry())
    await g.reached
    await setHot(1)
    await changed(i1) // instance 1 changes; the other has not heard of it
    const late = deaf.rt.read(entry()) // so it joins the in-flight load that began before the change
    g.open()
    expect(hot(await early)).toBe(0)
    expect(hot(await late)).toBe(1) // the joined load was fenced, so the joiner loaded again
    const stored = await admin.getBuffer(ctx.app.dashboard.keys.entry(entry()))
    if (stored) expect((JSON.parse(open(stored)!.body.toString()) as UnitCounts).too_hot).toBe(1)
  })

  it('joiners of a fenced load reload together: one more PostgreSQL load, not one each', async () => {
    await reset()
    const before = await deaf.loads()
    const g = deaf.holdNextLoad()
    const early = deaf.rt.read(entry())
    await g.reached
    await setHot(1)
    await changed(i1)
    const late = Array.from({ length: 50 }, () => deaf.rt.read(entry()))
    g.open()
    expect(hot(await early)).toBe(0)
    for (const r of await Promise.all(late)) expect(hot(r)).toBe(1)
    expect(await deaf.loads() - before).toBe(2)
  })

  it('drops every load in flight when the subscriber loses its connection (messages may have been missed)', async () => {
    await reset()
    const before = await listening.loads()
    const g = listening.holdNextLoad()
    const early = listening.rt.read(entry())
    await g.reached
    const closed = new Promise<void>((resolve) => listening.sub.once('close', () => resolve()))
    await admin.client('KILL', 'ID', String(listening.subId))
    await closed
    const late = listening.rt.read(entry()) // must not join the load from before the disconnection
    g.open()
    await Promise.all([early, late])
    expect(await listening.loads() - before).toBe(2)
    await waitFor(() => listening.sub.status === 'ready', 5000, 'subscriber back')
  })
})
