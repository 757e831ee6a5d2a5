import { eq } from 'drizzle-orm'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { open } from '../../src/features/dashboard/envelope.js'
import type { App } from '../../src/app.js'
import { units } from '../../src/db/schema.js'
import type { ChangeEvent } from '../../src/features/changes/events.js'
import { buildTestApp, newPrefix } from '../helpers/fixture.js'
import { createTestDatabase, type TestDatabase } from '../helpers/db.js'
import { createOrgFixture, type OrgFixture } from '../helpers/fixtures.js'
import { startPrivateRedis, startTcpProxy, waitFor, type PrivateRedis } from '../helpers/redis.js'
import { metricTotal } from '../helpers/metrics.js'

/** Faults on a private redis-server behind a TCP proxy that can cut, restore and slow the connection. */
describe('cache faults', () => {
  let db: TestDatabase
  let redis: PrivateRedis
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>
  let direct: Redis
  let app: App
  let f: OrgFixture
  const emitted: ChangeEvent[] = []

  beforeAll(async () => {
    db = await createTestDatabase()
    redis = await startPrivateRedis()
    proxy = await startTcpProxy(redis.port)
    direct = new Redis(redis.url, { retryStrategy: () => 200 })
    direct.on('error', () => {})
    app = await buildTestApp({ database: db, prefix: newPrefix(), redis: proxy.url, env: { REDIS_COMMAND_TIMEOUT_MS: '200' } })
    await app.ready()
    f = await createOrgFixture(db.db, { units: 2 })
    const emit = app.realtime.emit
    app.realtime.emit = (event) => { emitted.push(event); emit(event) }
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
    proxy.setReplyDelay(0)
    proxy.restore()
    await waitFor(() => app.cache.isAvailable(), 10_000, 'cache connected')
    await db.db.update(units).set({ state: 'normal' }).where(eq(units.organizationId, f.org.id))
    await app.dashboard.readThrough.invalidate({ organizationId: f.org.id, events: [], orgWide: true })
    // A reply still delayed by the slow-Redis case can time this invalidation out; it is then replayed.
    await waitFor(() => !app.dashboard.readThrough.hasPending(f.org.id), 10_000, 'no pending invalidation')
  })

  const path = () => `/api/orgs/${f.org.id}/dashboard/units/status`
  const read = Object.assign(() => app.inject({ url: path(), headers: read.headers() }), {
    headers: () => ({ authorization: `Bearer ${app.tokens.sign({ sub: 'viewer', orgs: { [f.org.id]: 'viewer' } })}` })
  })
  const errors = () => metricTotal(app.cache.metrics.errors)
  const unitsStatusKey = () => app.dashboard.keys.entry({ queryType: 'units_status', orgId: f.org.id })
  /** A change through the write path: commit, (failed) invalidation, emit. */
  async function changeUnit () {
    await app.changes.commit(async (tx) => {
      await tx.update(units).set({ state: 'too_hot' }).where(eq(units.id, f.units[0]!.id))
      return {
        value: undefined,
        events: [{ name: 'unitUpdate', payload: { organizationId: f.org.id, unitId: f.units[0]!.id, state: 'too_hot', previousState: 'normal', lastTemperature: 12, lastReadingAt: new Date().toISOString() } }]
      }
    })
  }

  it('an invalidation that could not run is applied before the organization uses the cache again', async () => {
    await read()
    expect((await read()).headers['x-cache']).toBe('hit')
    proxy.cut()
    await waitFor(() => !app.cache.isAvailable(), 5000, 'cut noticed')
    emitted.length = 0
    await changeUnit() // commit + failed invalidation + emit
    expect(emitted.map((e) => e.name)).toEqual(['unitUpdate']) // the failed invalidation never blocks the emit
    expect(app.dashboard.readThrough.hasPending(f.org.id)).toBe(true)
    // Redis kept the pre-event value all along.
    expect(JSON.parse(open((await direct.getBuffer(unitsStatusKey()))!)!.body.toString()).too_hot).toBe(0)
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
    await waitFor(() => !app.dashboard.readThrough.hasPending(f.org.id), 10_000, 'replayed')
    await read()
    expect((await read()).headers['x-cache']).toBe('hit')
  })

  it('concurrent reads share GETs, but a read never takes the answer of a GET sent before it began', async () => {
    const key = unitsStatusKey()
    await direct.set(key, 'before the change')
    const gets = async () => Number(/cmdstat_get:calls=(\d+)/.exec(await direct.info('commandstats'))?.[1] ?? 0)
    // Redis runs each GET at once; its answer takes 120 ms to come back.
    proxy.setReplyDelay(120)
    const sent = await gets()
    const early = app.cache.get(key)
    // Wait until Redis has run that GET (not a fixed sleep: on a loaded machine the proxy may forward late).
    await waitFor(async () => await gets() > sent, 5000, 'the early GET ran')
    await direct.set(key, 'after the change') // a change completes while that answer is on its way
    const late = Array.from({ length: 50 }, () => app.cache.get(key))
    expect(String(await early)).toBe('before the change') // it began before the change: allowed
    // Every read that began after the change has its answer from a GET that Redis ran after it.
    for (const r of await Promise.all(late)) expect(String(r)).toBe('after the change')
    proxy.setReplyDelay(0)
    const before = await gets()
    const many = await Promise.all(Array.from({ length: 200 }, () => app.cache.get(key)))
    expect(many.every((r) => String(r) === 'after the change')).toBe(true)
    // 200 concurrent reads: a GET for the first, one more for all that came while it was out (and the INFO itself).
    expect(await gets() - before).toBeLessThanOrEqual(3)
    await direct.del(key)
  })

  it('a slow Redis (500 ms per reply) costs a read that needs it the bounded timeout, then PostgreSQL answers', async () => {
    await read() // stored in Redis, and kept in-process by the instance that stored it
    proxy.setDelay(500)
    // The in-process copy answers without Redis.
    const copy = await read()
    expect(copy.headers['x-cache']).toBe('hit')
    expect(copy.json().total).toBe(2)
    // A read that must ask Redis (no copy of that entry here) waits at most the command timeout.
    const other = await app.inject({ url: `/api/orgs/${f.org.id}/dashboard/devices/online`, headers: read.headers() })
    expect(other.statusCode).toBe(200)
    expect(other.headers['x-cache']).toBe('bypass')
    expect(other.json()).toEqual(await app.dashboard.queries.devicesOnline(f.org.id))
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
    expect(await direct.exists(unitsStatusKey())).toBe(0) // a new, empty process
    expect((await read()).headers['x-cache']).toBe('miss')
    expect((await read()).headers['x-cache']).toBe('hit')
  })

  it('FLUSHALL under a running service: the in-process copy answers on (nothing changed), a read that reaches Redis misses and refills', async () => {
    const localHits = () => metricTotal(app.dashboard.metrics.localHit)
    await read()
    expect((await read()).headers['x-cache']).toBe('hit')
    await direct.flushall()
    const before = await localHits()
    const res = await read()
    expect(res.headers['x-cache']).toBe('hit')
    expect(res.json().total).toBe(2)
    expect(await localHits()).toBe(before + 1)
    expect(await direct.exists(unitsStatusKey())).toBe(0)
    // A forced refresh loads and stores in Redis again; what it stored is the instance's copy from then on.
    const forced = await app.inject({ url: path(), headers: { ...read.headers(), 'cache-control': 'no-cache' } })
    expect(forced.headers['x-cache']).toBe('bypass')
    expect(await direct.exists(unitsStatusKey())).toBe(1)
    expect((await read()).headers['x-cache']).toBe('hit')
    expect(await localHits()).toBe(before + 2)
  })
})
