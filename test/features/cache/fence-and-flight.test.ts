import { eq } from 'drizzle-orm'
import pino from 'pino'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { units } from '../../../src/db/schema.js'
import { createMetrics, type Metrics } from '../../../src/infra/metrics.js'
import { createCacheService } from '../../../src/features/cache/cache-service.js'
import { createDashboardCache } from '../../../src/features/cache/dashboard-cache.js'
import { dashboardKey, generationKey } from '../../../src/features/cache/keys.js'
import { createDashboardQueries } from '../../../src/features/dashboard/queries.js'
import type { UnitCounts } from '../../../src/features/dashboard/types.js'
import type { DashboardQueryService } from '../../../src/features/dashboard/queries.js'
import { systemClock } from '../../../src/lib/clock.js'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js'
import { createOrgFixture, type OrgFixture } from '../../helpers/fixtures.js'
import { sharedRedisUrl, waitFor } from '../../helpers/redis.js'

/** A gate the loader waits at: the test decides when a load that already read PostgreSQL may finish. */
function gate () {
  let open!: () => void
  let arrived!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  const reached = new Promise<void>((resolve) => { arrived = resolve })
  return { open, opened, reached, arrive: arrived }
}

/**
 * One "instance": a dashboard cache with its own connections and metrics, whose units_status loader can
 * be held between reading PostgreSQL and returning (the barrier the race needs, no sleeps).
 */
function instance (db: TestDatabase, connections: Redis[], opts: { subscribe?: boolean } = {}) {
  const metrics: Metrics = createMetrics()
  const conn = new Redis(sharedRedisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  const subName = `cb-test-sub-${Math.random().toString(36).slice(2)}`
  const sub = opts.subscribe === false ? null : new Redis(sharedRedisUrl, { connectionName: subName })
  connections.push(conn, ...(sub ? [sub] : []))
  const real = createDashboardQueries({ db: db.db, clock: systemClock })
  let hold: ReturnType<typeof gate> | null = null
  const queries: DashboardQueryService = {
    ...real,
    async unitsStatus (orgId: string): Promise<UnitCounts> {
      const value = await real.unitsStatus(orgId)
      const g = hold
      if (g) { hold = null; g.arrive(); await g.opened }
      return value
    }
  }
  const log = pino({ level: 'silent' })
  const cache = createCacheService({ redis: conn, ttlSeconds: 60, metrics, log })
  const dc = createDashboardCache({ cache, queries, metrics, log, publisher: conn, subscriber: sub })
  const loads = async () => (await metrics.dbLoad.get()).values.find((v) => v.labels.query_type === 'units_status')?.value ?? 0
  return { dc, cache, metrics, loads, sub, subName, holdNextLoad: () => { hold = gate(); return hold } }
}

describe('fenced writes and single-flight across an invalidation', () => {
  let db: TestDatabase
  let f: OrgFixture
  let admin: Redis
  const connections: Redis[] = []
  let i1: ReturnType<typeof instance>
  let i2: ReturnType<typeof instance>
  let deaf: ReturnType<typeof instance>
  const entry = () => ({ queryType: 'units_status' as const, orgId: f.org.id })
  const setHot = (n: number) => db.db.update(units).set({ state: n > 0 ? 'too_hot' : 'normal' }).where(eq(units.id, f.units[0]!.id))
  const hot = (r: { body: string | Buffer } | null) => (JSON.parse(r!.body.toString()) as UnitCounts).too_hot

  beforeAll(async () => {
    db = await createTestDatabase()
    f = await createOrgFixture(db.db, { units: 2 })
    admin = new Redis(sharedRedisUrl)
    i1 = instance(db, connections)
    i2 = instance(db, connections)
    // An instance whose cache:invalidate message has not arrived yet (it never subscribes).
    deaf = instance(db, connections, { subscribe: false })
    await waitFor(() => connections.every((c) => c.status === 'ready'), 5000, 'connections')
  })
  afterAll(async () => {
    await admin.unlink(dashboardKey(entry()), generationKey(f.org.id))
    for (const c of connections) c.disconnect()
    admin.disconnect()
    i1.dc.close(); i2.dc.close(); deaf.dc.close()
    await db.drop()
  })

  async function reset () {
    await setHot(0)
    await i1.dc.invalidateOrg(f.org.id)
  }

  it('a load that read PostgreSQL before a change never writes its result back after the invalidation', async () => {
    await reset()
    const g = i1.holdNextLoad()
    const slow = i1.dc.read(entry())
    await g.reached // the loader has read too_hot = 0 from PostgreSQL
    await setHot(1)
    await i2.dc.invalidate(f.org.id, [entry()]) // another instance commits and invalidates
    g.open()
    expect(hot(await slow)).toBe(0) // that request began before the change: allowed to see it
    expect(await admin.exists(dashboardKey(entry()))).toBe(0) // …but the stale value was not stored
    const next = await i1.dc.read(entry())
    expect(next?.cache).toBe('miss')
    expect(hot(next)).toBe(1)
  })

  it('200 concurrent requests for a cold key cost one PostgreSQL load', async () => {
    await reset()
    const before = await i1.loads()
    const results = await Promise.all(Array.from({ length: 200 }, () => i1.dc.read(entry())))
    expect(await i1.loads() - before).toBe(1)
    expect(new Set(results.map((r) => r!.body.toString())).size).toBe(1)
    expect(results.filter((r) => r!.cache === 'miss')).toHaveLength(200)
  })

  it('concurrent Cache-Control: no-cache refreshes share one load too', async () => {
    await reset()
    await i1.dc.read(entry())
    const before = await i1.loads()
    const results = await Promise.all(Array.from({ length: 50 }, () => i1.dc.read(entry(), { refresh: true })))
    expect(await i1.loads() - before).toBe(1)
    expect(results.every((r) => r!.cache === 'bypass')).toBe(true)
  })

  it('a request that starts after a local invalidation does not join the load that began before it', async () => {
    await reset()
    const before = await i1.loads()
    const g = i1.holdNextLoad()
    const early = i1.dc.read(entry())
    await g.reached
    await setHot(1)
    await i1.dc.invalidate(f.org.id, [entry()])
    const late = i1.dc.read(entry()) // starts after the invalidation
    expect(hot(await late)).toBe(1)
    g.open()
    expect(hot(await early)).toBe(0)
    expect(await i1.loads() - before).toBe(2)
  })

  it('…nor one on another instance, even before that instance hears of it on cache:invalidate', async () => {
    await reset()
    const g = deaf.holdNextLoad()
    const early = deaf.dc.read(entry())
    await g.reached
    await setHot(1)
    await i1.dc.invalidate(f.org.id, [entry()]) // instance 1 changes; the other has not heard of it
    const late = deaf.dc.read(entry()) // so it joins the in-flight load that began before the change
    g.open()
    expect(hot(await early)).toBe(0)
    expect(hot(await late)).toBe(1) // the joined load was fenced, so the joiner loaded again
    const stored = await admin.get(dashboardKey(entry()))
    if (stored) expect((JSON.parse(stored) as UnitCounts).too_hot).toBe(1)
  })

  it('joiners of a fenced load reload together: one more PostgreSQL load, not one each', async () => {
    await reset()
    const before = await deaf.loads()
    const g = deaf.holdNextLoad()
    const early = deaf.dc.read(entry())
    await g.reached
    await setHot(1)
    await i1.dc.invalidate(f.org.id, [entry()])
    const late = Array.from({ length: 50 }, () => deaf.dc.read(entry()))
    g.open()
    expect(hot(await early)).toBe(0)
    for (const r of await Promise.all(late)) expect(hot(r)).toBe(1)
    expect(await deaf.loads() - before).toBe(2)
  })

  it('drops every load in flight when the subscriber loses its connection (messages may have been missed)', async () => {
    await reset()
    const before = await i2.loads()
    const g = i2.holdNextLoad()
    const early = i2.dc.read(entry())
    await g.reached
    const list = await admin.client('LIST') as string
    const line = list.split('\n').find((l) => l.includes(`name=${i2.subName}`))
    const id = /\bid=(\d+)/.exec(line ?? '')?.[1]
    expect(id).toBeDefined()
    const closed = new Promise<void>((resolve) => i2.sub!.once('close', () => resolve()))
    await admin.client('KILL', 'ID', id!)
    await closed
    const late = i2.dc.read(entry()) // must not join the load from before the disconnection
    g.open()
    await Promise.all([early, late])
    expect(await i2.loads() - before).toBe(2)
    await waitFor(() => i2.sub!.status === 'ready', 5000, 'subscriber back')
  })

  it('coalesces a burst of invalidations for one organization into few script calls, each caller covered', async () => {
    const scripts = async () => (await i1.metrics.cacheLatency.get()).values
      .find((v) => v.labels.operation === 'invalidate' && v.metricName === 'dashboard_cache_latency_seconds_count')?.value ?? 0
    const before = await scripts()
    await Promise.all(Array.from({ length: 100 }, (_, k) => i1.dc.invalidate(f.org.id, [{ queryType: 'alerts_count', orgId: f.org.id, unitId: f.units[k % 2]!.id }])))
    const used = await scripts() - before
    expect(used).toBeGreaterThanOrEqual(1)
    expect(used).toBeLessThanOrEqual(2)
    const gen = await admin.hgetall(generationKey(f.org.id))
    for (const u of f.units) expect(gen[`alerts_count:${u.id}`]).toBeTruthy()
  })
})
