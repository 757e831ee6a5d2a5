import { eq } from 'drizzle-orm'
import { io, type Socket } from 'socket.io-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { App } from '../../src/app.js'
import { alerts, units } from '../../src/db/schema.js'
import { buildTestApp, newPrefix } from '../helpers/fixture.js'
import { createTestDatabase, type TestDatabase } from '../helpers/db.js'
import { createOrgFixture, type OrgFixture } from '../helpers/fixtures.js'
import { startPrivateRedis, startTcpProxy, waitFor, type PrivateRedis } from '../helpers/redis.js'

/**
 * The write path's order (commit → invalidation complete → emit) made observable. Instance A reaches Redis
 * through a proxy that delays every chunk by 300 ms, so each of A's invalidations takes over half a second;
 * instance B reads the same Redis directly. A client connected to A's socket reads from B the moment an
 * event arrives. If A emitted before its invalidation completed (the two steps swapped, or an invalidation
 * left to finish in the background), B would still hold the pre-change entry and the read would be stale.
 */
describe('write order: no emit overtakes its invalidation, on any instance', () => {
  let db: TestDatabase
  let redis: PrivateRedis
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>
  let a: App
  let b: App
  let baseA: string
  let baseB: string
  let f: OrgFixture
  let socket: Socket

  beforeAll(async () => {
    db = await createTestDatabase()
    redis = await startPrivateRedis()
    proxy = await startTcpProxy(redis.port)
    const env = { REDIS_COMMAND_TIMEOUT_MS: '5000' }
    const prefix = newPrefix()
    a = await buildTestApp({ database: db, prefix, redis: proxy.url, env })
    b = await buildTestApp({ database: db, prefix, redis: redis.url, env })
    baseA = await a.listen({ port: 0, host: '127.0.0.1' })
    baseB = await b.listen({ port: 0, host: '127.0.0.1' })
    await waitFor(() => a.cache.isAvailable() && b.cache.isAvailable(), 10_000, 'caches ready')
    f = await createOrgFixture(db.db, { units: 1, tempMin: 2, tempMax: 8 })
    socket = io(baseA, { auth: { token: a.tokens.sign({ sub: 'viewer', orgs: { [f.org.id]: 'viewer' } }) }, transports: ['websocket'] })
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('connect_error', reject) })
  })
  afterAll(async () => {
    socket?.disconnect()
    proxy?.setDelay(0)
    await a?.close()
    await b?.close()
    await proxy?.close()
    await redis?.stop()
    await db?.drop()
  })

  const headers = () => ({ authorization: `Bearer ${a.tokens.sign({ sub: 'manager', orgs: { [f.org.id]: 'manager' } })}` })
  async function readB (path: string): Promise<{ body: Record<string, number>, cache: string | null }> {
    const res = await fetch(`${baseB}/api/orgs/${f.org.id}${path}`, { headers: headers() })
    expect(res.status).toBe(200)
    return { body: await res.json() as Record<string, number>, cache: res.headers.get('x-cache') }
  }

  /** Warms B's entry, slows A's Redis, makes the change through A, and reads B as soon as the event arrives. */
  async function changeAndReadOnEvent (event: string, path: string, change: () => Promise<void>) {
    await readB(path)
    expect((await readB(path)).cache).toBe('hit')
    const seen = new Promise<ReturnType<typeof readB>>((resolve) => socket.once(event, () => resolve(readB(path))))
    proxy.setDelay(300)
    try {
      await change()
      return (await seen).body
    } finally {
      proxy.setDelay(0)
    }
  }

  it('alert acknowledged and resolved through A: B answers the new counts to a client told by A', async () => {
    for (let round = 0; round < 3; round++) {
      const [alert] = await db.db.insert(alerts).values({
        organizationId: f.org.id, unitId: f.units[0]!.id, type: 'temperature_excursion', severity: 'warning', status: 'active', threshold: 'temp_max', triggerTemperature: 9
      }).returning()
      await a.dashboard.readThrough.invalidate({ organizationId: f.org.id, events: [], orgWide: true }) // the row was inserted behind the service's back
      const acked = await changeAndReadOnEvent('alertAcknowledged', '/dashboard/alerts/count', async () => {
        const res = await fetch(`${baseA}/api/orgs/${f.org.id}/alerts/${alert!.id}/acknowledge`, { method: 'POST', headers: headers() })
        expect(res.status).toBe(200)
      })
      expect(acked).toEqual({ unresolved: 1, acknowledged: 1, critical: 0 })
      const resolved = await changeAndReadOnEvent('alertResolved', '/dashboard/alerts/count', async () => {
        const res = await fetch(`${baseA}/api/orgs/${f.org.id}/alerts/${alert!.id}/resolve`, { method: 'POST', headers: headers() })
        expect(res.status).toBe(200)
      })
      expect(resolved).toEqual({ unresolved: 0, acknowledged: 0, critical: 0 })
    }
  }, 60_000)

  it('a threshold change through A that moves the unit: B answers the new state to a client told by A', async () => {
    await db.db.update(units).set({ lastTemperature: 6, lastReadingAt: new Date(), state: 'normal' }).where(eq(units.id, f.units[0]!.id))
    await a.dashboard.readThrough.invalidate({ organizationId: f.org.id, events: [], orgWide: true })
    for (const [tempMax, hot] of [[5, 1], [8, 0]] as const) {
      const body = await changeAndReadOnEvent('unitUpdate', '/dashboard/units/status', async () => {
        const res = await fetch(`${baseA}/api/orgs/${f.org.id}/units/${f.units[0]!.id}`, {
          method: 'PATCH', headers: { ...headers(), 'content-type': 'application/json' }, body: JSON.stringify({ tempMax })
        })
        expect(res.status).toBe(200)
      })
      expect(body.too_hot).toBe(hot)
    }
  }, 60_000)
})
