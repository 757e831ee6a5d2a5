import { eq } from 'drizzle-orm'
import { gunzipSync } from 'node:zlib'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { App } from '../../../src/app.js'
import { alerts, sensorReadings, units } from '../../../src/db/schema.js'
import { complianceKey, dashboardKey, generationKey, type Entry } from '../../../src/features/cache/keys.js'
import type { ChangeEvent } from '../../../src/features/events/types.js'
import { bearer, buildTestApp } from '../../helpers/app.js'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js'
import { createOrgFixture, type OrgFixture } from '../../helpers/fixtures.js'
import { sharedRedisUrl, waitFor } from '../../helpers/redis.js'

describe('dashboard cache-aside over HTTP (real Redis and PostgreSQL)', () => {
  let db: TestDatabase
  let app: App
  let redis: Redis
  let a: OrgFixture
  let b: OrgFixture

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
    app.inject({ url, headers: { ...bearer(app, { [f.org.id]: 'viewer' }), ...headers } })
  async function warmAll (f: OrgFixture) {
    for (const url of Object.values(urls(f))) expect((await get(f, url)).statusCode).toBe(200)
  }
  async function present (f: OrgFixture) {
    const out: Record<string, boolean> = {}
    for (const [name, e] of Object.entries(entries(f))) out[name] = (await redis.exists(dashboardKey(e))) === 1
    return out
  }

  beforeAll(async () => {
    db = await createTestDatabase()
    app = await buildTestApp({ database: db, env: { REDIS_URL: sharedRedisUrl } })
    await app.ready()
    redis = new Redis(sharedRedisUrl)
    await waitFor(() => app.cache.isAvailable(), 5000, 'cache ready')
    a = await createOrgFixture(db.db, { units: 3 })
    b = await createOrgFixture(db.db, { units: 2 })
  })
  afterAll(async () => {
    for (const f of [a, b]) {
      if (!f) continue
      await app.cache.invalidatePattern(`dashboard:*:org:${f.org.id}*`)
      await redis.unlink(generationKey(f.org.id))
    }
    redis?.disconnect()
    await app?.close()
    await db?.drop()
  })
  beforeEach(async () => { for (const f of [a, b]) await app.dashboard.cache.invalidateOrg(f.org.id) })

  it('misses, then hits with the same body, under the SPEC key names, each with the TTL', async () => {
    for (const [name, url] of Object.entries(urls(a))) {
      const first = await get(a, url)
      expect(first.statusCode, name).toBe(200)
      expect(first.headers['x-cache'], name).toBe('miss')
      const second = await get(a, url)
      expect(second.headers['x-cache'], name).toBe('hit')
      expect(second.body, name).toBe(first.body)
      expect(second.headers['content-type']).toMatch(/^application\/json/)
      const key = dashboardKey(entries(a)[name as keyof ReturnType<typeof urls>])
      const ttl = await redis.ttl(key)
      expect(ttl, key).toBeGreaterThan(50)
      expect(ttl, key).toBeLessThanOrEqual(60)
    }
    expect((await get(a, urls(a).units_status)).json()).toEqual({ total: 3, normal: 3, too_hot: 0, too_cold: 0, offline: 0 })
  })

  it('Cache-Control: no-cache bypasses the stored copy and refreshes it', async () => {
    await get(a, urls(a).units_status)
    await db.db.update(units).set({ state: 'too_hot' }).where(eq(units.id, a.units[1]!.id))
    expect((await get(a, urls(a).units_status)).json().too_hot).toBe(0) // stored copy, no event was published
    const forced = await get(a, urls(a).units_status, { 'cache-control': 'no-cache' })
    expect(forced.headers['x-cache']).toBe('bypass')
    expect(forced.json().too_hot).toBe(1)
    const after = await get(a, urls(a).units_status)
    expect(after.headers['x-cache']).toBe('hit')
    expect(after.json().too_hot).toBe(1)
    await db.db.update(units).set({ state: 'normal' }).where(eq(units.id, a.units[1]!.id))
  })

  it('each event type removes exactly what it changes, before it is emitted', async () => {
    const unitId = a.units[0]!.id
    const cases: Array<{ event: ChangeEvent, gone: string[] }> = [
      {
        event: { name: 'unitUpdate', payload: { organizationId: a.org.id, unitId, state: 'too_hot', previousState: 'normal', lastTemperature: 9, lastReadingAt: new Date().toISOString() } },
        gone: ['stats', 'units_status', 'temperature_trends']
      },
      ...(['alertCreated', 'alertAcknowledged', 'alertResolved', 'alertEscalated'] as const).map((name) => ({
        event: { name, payload: { organizationId: a.org.id, alertId: unitId, unitId, type: 'temperature_excursion' as const, severity: 'warning' as const, status: 'active' as const } },
        gone: ['stats', 'alerts_count', 'alerts_count_unit']
      })),
      {
        event: { name: 'deviceStatusChange', payload: { organizationId: a.org.id, deviceId: a.devices[0]!.id, unitId, status: 'offline' } },
        gone: ['stats', 'devices_online']
      }
    ]
    for (const c of cases) {
      await warmAll(a)
      let seenAtEmit: Record<string, boolean> | null = null
      const probe = async () => { seenAtEmit = await present(a) }
      const pending: Array<Promise<void>> = []
      app.events.onEmit((e) => { if (e === c.event) pending.push(probe()) })
      await app.events.publish([c.event])
      await Promise.all(pending)
      expect(seenAtEmit, c.event.name).not.toBeNull()
      for (const [name, exists] of Object.entries(seenAtEmit!)) {
        expect(exists, `${c.event.name}: ${name}`).toBe(!c.gone.includes(name))
      }
    }
  })

  it('keeps tenants apart: A\'s invalidation leaves B\'s keys, A\'s token never reads B\'s entries', async () => {
    await warmAll(a)
    await warmAll(b)
    await app.events.publish([{ name: 'unitUpdate', payload: { organizationId: a.org.id, unitId: a.units[0]!.id, state: 'too_cold', previousState: 'normal', lastTemperature: 0, lastReadingAt: null } }])
    await app.dashboard.cache.invalidateOrg(a.org.id)
    expect(Object.values(await present(b)).every(Boolean)).toBe(true)
    expect(Object.values(await present(a)).some(Boolean)).toBe(false)
    for (const url of Object.values(urls(b))) {
      const res = await app.inject({ url, headers: bearer(app, { [a.org.id]: 'owner' }) })
      expect(res.statusCode, url).toBe(403)
      expect(res.json().error.code).toBe('FORBIDDEN')
    }
    // A's unit through B's organization is not found, never served from A's entry.
    const cross = await get(b, `/api/orgs/${b.org.id}/units/${a.units[0]!.id}/temperature-trends`)
    expect(cross.statusCode).toBe(404)
  })

  it('serves a garbage value as a miss and replaces it', async () => {
    const key = dashboardKey(entries(a).devices_online)
    await redis.set(key, 'garbage', 'EX', 60)
    const res = await get(a, urls(a).devices_online)
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-cache']).toBe('miss')
    expect(res.json()).toEqual({ total: 3, online: 0, offline: 3 })
    expect(JSON.parse((await redis.get(key))!)).toEqual(res.json())
  })

  it('moves hit, miss, bypass and db-load counters exactly as a scripted sequence says', async () => {
    const metric = async (name: string, labels: Record<string, string>) => {
      const text = await (await app.inject({ url: '/metrics' })).body
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
    await app.events.publish([{ name: 'deviceStatusChange', payload: { organizationId: a.org.id, deviceId: a.devices[0]!.id, unitId: a.units[0]!.id, status: 'online' } }])
    await get(a, urls(a).devices_online) // miss + load
    const after = await snapshot()
    expect(after.hit - before.hit).toBe(2)
    expect(after.miss - before.miss).toBe(2)
    expect(after.load - before.load).toBe(3)
    expect(after.refresh - before.refresh).toBe(1)
    const text = (await app.inject({ url: '/metrics' })).body
    for (const name of ['dashboard_cache_error_total', 'dashboard_cache_latency_seconds_bucket', 'dashboard_cache_invalidation_seconds_bucket']) {
      expect(text).toContain(name)
    }
    expect(text).not.toMatch(/org(anization)?_?id="/)
  })

  it('answers 404 for a unit of another organization and 400 for a malformed id, without caching', async () => {
    const res = await get(a, `/api/orgs/${a.org.id}/units/${b.units[0]!.id}/temperature-trends`)
    expect(res.statusCode).toBe(404)
    expect(await redis.exists(dashboardKey({ queryType: 'temperature_trends', orgId: a.org.id, unitId: b.units[0]!.id }))).toBe(0)
    expect((await get(a, `/api/orgs/${a.org.id}/units/not-a-uuid/temperature-trends`)).statusCode).toBe(400)
    expect((await get(a, `/api/orgs/${a.org.id}/dashboard/alerts/count?unitId=nope`)).statusCode).toBe(400)
  })

  it('reports redis, cache and queue in /health with the eviction policy', async () => {
    const res = await app.inject({ url: '/health' })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body.status).toBe('ok')
    expect(body.checks.redis.ok).toBe(true)
    expect(body.checks.cache).toMatchObject({ ok: true, enabled: true, ttlSeconds: 60 })
    expect(body.checks.queue.ok).toBe(true)
    expect(typeof body.checks.redis.maxmemoryPolicy === 'string' || body.checks.redis.maxmemoryPolicy === null).toBe(true)
  })

  it('a management write (a new unit, a new device) drops the organization\'s cached counts', async () => {
    const manager = bearer(app, { [b.org.id]: 'manager' })
    const before = (await get(b, urls(b).units_status)).json().total
    expect((await get(b, urls(b).units_status)).headers['x-cache']).toBe('hit')
    const created = await app.inject({
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
    const device = await app.inject({
      method: 'POST',
      url: `/api/orgs/${b.org.id}/devices`,
      headers: manager,
      payload: { unitId: created.json().id, deviceEui: `eui-extra-${b.org.id}` }
    })
    expect(device.statusCode).toBe(201)
    expect((await get(b, urls(b).devices_online)).json().total).toBe(devicesBefore + 1)
  })

  it('an event reloads the overview\'s counts but not its compliance figure, which lives by TTL alone', async () => {
    const loads = async () => (await app.metrics.dbLoad.get()).values.find((v) => v.labels.query_type === 'stats')?.value ?? 0
    const first = await get(a, urls(a).stats)
    expect(first.headers['x-cache']).toBe('miss')
    const ttl = await redis.ttl(complianceKey(a.org.id))
    expect(ttl).toBeGreaterThan(50)
    expect(ttl).toBeLessThanOrEqual(60)
    const before = await loads()
    await app.events.publish([{ name: 'unitUpdate', payload: { organizationId: a.org.id, unitId: a.units[0]!.id, state: 'normal', previousState: 'normal', lastTemperature: 5, lastReadingAt: null } }])
    const again = await get(a, urls(a).stats)
    expect(again.headers['x-cache']).toBe('miss')
    expect(await loads() - before).toBe(1) // the counts; compliance came from its own entry
    expect(again.json().compliancePercentage).toBe(first.json().compliancePercentage)
    await app.dashboard.cache.invalidateOrg(a.org.id) // an organization-wide invalidation drops it too
    expect(await redis.exists(complianceKey(a.org.id))).toBe(0)
  })

  it('stores a large entry (a full 24 h trend) gzip-compressed and serves it compressed or inflated', async () => {
    const unit = a.units[1]!
    const now = Date.now()
    await db.db.insert(sensorReadings).values(Array.from({ length: 1430 }, (_, i) => ({
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
    const stored = await redis.getBuffer(dashboardKey({ queryType: 'temperature_trends', orgId: a.org.id, unitId: unit.id }))
    expect(stored![0]).toBe(0x1f)
    expect(stored!.length * 5).toBeLessThan(Buffer.byteLength(miss.body)) // at least 5× smaller in Redis
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
    await db.db.insert(alerts).values({ organizationId: a.org.id, unitId: a.units[2]!.id, type: 'temperature_excursion', severity: 'critical', triggerTemperature: 9, threshold: 'temp_max' })
    await app.events.publish([{ name: 'alertCreated', payload: { organizationId: a.org.id, alertId: a.units[2]!.id, unitId: a.units[2]!.id, type: 'temperature_excursion', severity: 'critical', status: 'active' } }])
    expect((await get(a, urls(a).alerts_count)).json()).toEqual({ unresolved: 1, acknowledged: 0, critical: 1 })
  })
})
