import { eq } from 'drizzle-orm'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { App } from '../../src/app.js'
import { units } from '../../src/db/schema.js'
import { dashboardKey } from '../../src/features/cache/keys.js'
import { bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase, type TestDatabase } from '../helpers/db.js'
import { createOrgFixture, type OrgFixture } from '../helpers/fixtures.js'
import { startPrivateRedis, startTcpProxy, waitFor, type PrivateRedis } from '../helpers/redis.js'

/** Faults on a private redis-server behind a TCP proxy that can cut, restore and slow the connection. */
describe('cache faults', () => {
  let db: TestDatabase
  let redis: PrivateRedis
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>
  let direct: Redis
  let app: App
  let f: OrgFixture

  beforeAll(async () => {
    db = await createTestDatabase()
    redis = await startPrivateRedis()
    proxy = await startTcpProxy(redis.port)
    direct = new Redis(redis.url, { retryStrategy: () => 200 })
    direct.on('error', () => {})
    app = await buildTestApp({ database: db, env: { REDIS_URL: proxy.url, REDIS_COMMAND_TIMEOUT_MS: '200' } })
    await app.ready()
    f = await createOrgFixture(db.db, { units: 2 })
  })
  afterAll(async () => {
    await app?.close()
    direct?.disconnect()
    await proxy?.close()
    await redis?.stop()
    await db?.drop()
  })
  beforeEach(async () => {
    proxy.setDelay(0)
    proxy.restore()
    await waitFor(() => app.cache.isAvailable(), 10_000, 'cache connected')
    await db.db.update(units).set({ state: 'normal' }).where(eq(units.organizationId, f.org.id))
    await app.dashboard.cache.invalidateOrg(f.org.id)
    // A reply still delayed by the slow-Redis case can time this invalidation out; it is then replayed.
    await waitFor(() => !app.dashboard.cache.hasPending(f.org.id), 10_000, 'no pending invalidation')
  })

  const path = () => `/api/orgs/${f.org.id}/dashboard/units/status`
  const read = () => app.inject({ url: path(), headers: bearer(app, { [f.org.id]: 'viewer' }) })
  const errors = async () => (await app.metrics.cacheError.get()).values.reduce((n, v) => n + v.value, 0)
  async function changeUnit () {
    await db.db.update(units).set({ state: 'too_hot' }).where(eq(units.id, f.units[0]!.id))
    await app.events.publish([{ name: 'unitUpdate', payload: { organizationId: f.org.id, unitId: f.units[0]!.id, state: 'too_hot', previousState: 'normal', lastTemperature: 12, lastReadingAt: new Date().toISOString() } }])
  }

  it('an invalidation that could not run is applied before the organization uses the cache again', async () => {
    await read()
    expect((await read()).headers['x-cache']).toBe('hit')
    proxy.cut()
    await waitFor(() => !app.cache.isAvailable(), 5000, 'cut noticed')
    await changeUnit() // commit + failed invalidation + emit
    expect(app.dashboard.cache.hasPending(f.org.id)).toBe(true)
    // Redis kept the pre-event value all along.
    expect(JSON.parse((await direct.get(dashboardKey({ queryType: 'units_status', orgId: f.org.id })))!).too_hot).toBe(0)
    const during = await read()
    expect(during.headers['x-cache']).toBe('bypass')
    expect(during.json().too_hot).toBe(1)
    proxy.restore()
    // From the first read after the connection is back, never the pre-event value.
    for (let i = 0; i < 50; i++) {
      const res = await read()
      expect(res.statusCode).toBe(200)
      expect(res.json().too_hot).toBe(1)
    }
    await waitFor(() => !app.dashboard.cache.hasPending(f.org.id), 10_000, 'replayed')
    await read()
    expect((await read()).headers['x-cache']).toBe('hit')
  })

  it('a slow Redis (500 ms per reply) costs a read the bounded timeout, then PostgreSQL answers', async () => {
    await read()
    proxy.setDelay(500)
    const res = await read()
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-cache']).toBe('bypass')
    expect(res.json().total).toBe(2)
    proxy.setDelay(0)
  })

  it('a Redis restarted empty: no error storm while it is away, caching resumes by itself', async () => {
    await read()
    await redis.stop()
    await waitFor(() => !app.cache.isAvailable(), 5000, 'outage noticed')
    const before = await errors()
    for (let i = 0; i < 50; i++) expect((await read()).headers['x-cache']).toBe('bypass')
    expect(await errors()).toBe(before) // nothing is even attempted while disconnected
    await redis.start()
    await waitFor(() => app.cache.isAvailable(), 10_000, 'reconnected')
    expect(await direct.exists(dashboardKey({ queryType: 'units_status', orgId: f.org.id }))).toBe(0) // a new, empty process
    expect((await read()).headers['x-cache']).toBe('miss')
    expect((await read()).headers['x-cache']).toBe('hit')
  })

  it('FLUSHALL under a running service: the next read misses and refills', async () => {
    await read()
    expect((await read()).headers['x-cache']).toBe('hit')
    await direct.flushall()
    expect((await read()).headers['x-cache']).toBe('miss')
    expect((await read()).headers['x-cache']).toBe('hit')
  })
})
