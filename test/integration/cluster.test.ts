import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { App } from '../../src/app.js'
import { rows } from '../../src/infra/postgres.js'
import { clusterSlot } from '../../src/lib/cluster-slot.js'
import { buildTestApp, newPrefix } from '../helpers/fixture.js'
import { createTestDatabase, type TestDatabase } from '../helpers/db.js'
import { runEventStream } from '../helpers/event-stream.js'
import { createOrgFixture, type OrgFixture } from '../helpers/fixtures.js'
import { startRedisCluster, waitFor, type RedisClusterHandle } from '../helpers/redis.js'

/**
 * coldboard on a real Redis Cluster (3 primaries, 3 replicas, started by the test): two instances, the cache,
 * BullMQ, the Socket.io sharded adapter and the invalidation channel all on the cluster.
 */
describe('on a Redis Cluster', () => {
  let db: TestDatabase
  let cluster: RedisClusterHandle
  let a: App
  let b: App
  let baseA: string
  let baseB: string
  const prefix = newPrefix()

  beforeAll(async () => {
    db = await createTestDatabase()
    cluster = await startRedisCluster()
    const env = { REDIS_DISABLED: 'false', REDIS_CLUSTER_NODES: cluster.nodesEnv }
    // A runs the worker (evaluation jobs, the offline sweep); B is a peer without one.
    a = await buildTestApp({ database: db, prefix, env, worker: true })
    b = await buildTestApp({ database: db, prefix, env })
    baseA = await a.listen({ port: 0, host: '127.0.0.1' })
    baseB = await b.listen({ port: 0, host: '127.0.0.1' })
    await waitFor(() => a.cache.isAvailable() && b.cache.isAvailable() && a.queue!.ready(), 20_000, 'cluster connections')
  }, 120_000)
  afterAll(async () => {
    await a?.close()
    await b?.close()
    await cluster?.stop()
    await db?.drop()
  })

  const token = (f: OrgFixture) => a.tokens.sign({ sub: 'viewer', orgs: { [f.org.id]: 'viewer' } })
  const ingestInto = (f: OrgFixture) => async (readings: Array<{ deviceEui: string, temperature: number, recordedAt: Date }>) => (await a.inject({
    method: 'POST', url: '/api/ingest/readings', headers: { 'x-api-key': f.apiKey }, payload: { readings: readings.map((r) => ({ ...r, recordedAt: r.recordedAt.toISOString() })) }
  })).statusCode

  it('two instances, a writer flipping a unit, clients reading the other instance: zero stale reads', async () => {
    const f = await createOrgFixture(db.db, { units: 2 })
    const figures = await runEventStream({
      bases: [baseA, baseB], fixture: f, token: token(f), ingest: ingestInto(f), until: (x) => x.events >= 300
    })
    console.log('cluster freshness', JSON.stringify(figures))
    expect(figures.failedReads).toEqual([])
    expect(figures.staleReads).toEqual([])
    expect(figures.stale).toBe(0)
    expect(figures.events).toBeGreaterThanOrEqual(300)
    expect(figures.eventsPerClient[1]).toBe(figures.eventsPerClient[0])
    expect(figures.reads).toBeGreaterThanOrEqual(figures.events * 2 * 2)
    expect(figures.outcomes.hit).toBeGreaterThan(0)
    const [stored] = await rows<{ n: number }>(db.db, sql`select count(*)::int as n from sensor_readings where organization_id = ${f.org.id}`)
    expect(stored!.n).toBe(figures.readingsSent)
  }, 120_000)

  it('computes the slot of a key as the cluster does (hash tags included)', async () => {
    const keys = ['', 'a', 'foo', '{user1000}.following', 'foo{}{bar}', 'foo{{bar}}zap', 'foo{bar}{zap}', '{}x', 'x{', `${prefix}dashboard:gen:org:{8f7d1c2e-0000-4000-8000-000000000001}`, 'ünïcödé{ö}', `${prefix}socket.io#/#org:{8f7d1c2e-0000-4000-8000-000000000001}#`]
    for (const key of keys) expect(clusterSlot(key), key).toBe(Number(await cluster.on(cluster.ports[0]!, 'CLUSTER', 'KEYSLOT', key)))
  })

  it('an organization\'s keys share one slot, the queue\'s keys another, and the organization\'s events one shard\'s channel', async () => {
    const f = await createOrgFixture(db.db, { units: 2 })
    const auth = { authorization: `Bearer ${token(f)}` }
    for (const path of ['/dashboard', '/dashboard/units/status', '/dashboard/alerts/count', `/dashboard/alerts/count?unitId=${f.units[0]!.id}`, '/dashboard/devices/online', `/units/${f.units[1]!.id}/temperature-trends`]) {
      expect((await fetch(`${baseB}/api/orgs/${f.org.id}${path}`, { headers: auth })).status).toBe(200)
    }
    await a.dashboard.readThrough.invalidate({ organizationId: f.org.id, events: [], orgWide: true })
    for (const path of ['/dashboard/units/status', '/dashboard/devices/online']) await fetch(`${baseB}/api/orgs/${f.org.id}${path}`, { headers: auth })

    const keys: string[] = []
    for (const port of [...await cluster.roles()].filter(([, r]) => r.role === 'master').map(([p]) => p)) {
      let cursor = '0'
      do {
        const [next, found] = await cluster.on(port, 'SCAN', cursor, 'COUNT', 1000) as [string, string[]]
        keys.push(...found)
        cursor = next
      } while (cursor !== '0')
    }
    const orgKeys = keys.filter((k) => k.includes(f.org.id))
    expect(orgKeys.length).toBeGreaterThanOrEqual(3)
    expect(new Set(orgKeys.map(clusterSlot)).size).toBe(1)
    const queueKeys = keys.filter((k) => k.startsWith(`{${prefix}bull}`))
    expect(queueKeys.length).toBeGreaterThan(0)
    expect(new Set(queueKeys.map(clusterSlot)).size).toBe(1)

    // A client of the organization on B: B subscribes to the organization room's channel, on the primary that
    // holds the organization's keys, and on no other node.
    const socket = await (await import('../helpers/event-stream.js')).connectClient(baseB, token(f))
    try {
      const owner = await cluster.primaryOf(orgKeys[0]!)
      const channel = `${prefix}socket.io#/#org:{${f.org.id}}#`
      expect(clusterSlot(channel)).toBe(clusterSlot(orgKeys[0]!))
      await waitFor(async () => (await cluster.on(owner, 'PUBSUB', 'SHARDCHANNELS', `${prefix}socket.io#/#org:*`) as string[]).includes(channel), 5000, 'the room channel')
      for (const [port, r] of await cluster.roles()) {
        if (r.role !== 'master' || port === owner) continue
        expect(await cluster.on(port, 'PUBSUB', 'SHARDCHANNELS', `${prefix}socket.io#/#org:*`)).toEqual([])
      }
    } finally {
      socket.disconnect()
    }
  }, 60_000)
})
