import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { App } from '../../src/app.js'
import { alerts } from '../../src/db/schema.js'
import { HEADER_BYTES } from '../../src/features/dashboard/envelope.js'
import { clusterSlot } from '../../src/lib/cluster-slot.js'
import { buildTestApp, newPrefix, servedWorker } from '../helpers/fixture.js'
import { createTestDatabase, type TestDatabase } from '../helpers/db.js'
import { connectClient } from '../helpers/event-stream.js'
import { expectFreshThroughFailover, streamThroughPrimaryKill, type FailoverStreamResult } from '../helpers/failover-stream.js'
import { createOrgFixture, type OrgFixture } from '../helpers/fixtures.js'
import { freePort, startRedisCluster, startTcpProxy, waitFor, type RedisClusterHandle } from '../helpers/redis.js'

type Proxy = Awaited<ReturnType<typeof startTcpProxy>>

/**
 * Fresh through a failover on a real Redis Cluster (3 primaries, 3 replicas). Each node is announced through a TCP
 * proxy, so that a test can slow the replication stream of one shard (only the connections its replica opened)
 * while clients go through untouched; a primary is killed with SIGKILL and its replica promoted by the cluster.
 */
describe('Redis Cluster failover', () => {
  let db: TestDatabase
  let cluster: RedisClusterHandle
  const proxies = new Map<number, Proxy>()
  const apps: App[] = []

  beforeAll(async () => {
    db = await createTestDatabase()
    const ports: number[] = []
    while (ports.length < 6) {
      const p = await freePort()
      if (p + 10000 < 65536 && !ports.includes(p)) ports.push(p)
    }
    for (const p of ports) proxies.set(p, await startTcpProxy(p))
    cluster = await startRedisCluster({ ports, announcePort: (p) => proxies.get(p)!.port })
  }, 120_000)
  afterAll(async () => {
    for (const app of apps) await app.close()
    await cluster?.stop()
    for (const p of proxies.values()) await p.close()
    await db?.drop()
  })

  /**
   * Two instances on the cluster: A runs the worker with the sweep timer, as `serve` does (its watchdog replaces a
   * worker stuck after the failover); B is a peer without either. Closed at the end of the test that made them.
   */
  async function instances (o: { prefix: string, env?: Record<string, string> }): Promise<Array<{ app: App, base: string }>> {
    const env = { REDIS_DISABLED: 'false', REDIS_CLUSTER_NODES: cluster.nodesEnv, ...o.env }
    const out: Array<{ app: App, base: string }> = []
    for (const worker of [true, false]) {
      const app = await buildTestApp({ database: db, prefix: o.prefix, ...(worker ? servedWorker(env) : { env }) })
      apps.push(app)
      out.push({ app, base: await app.listen({ port: 0, host: '127.0.0.1' }) })
    }
    await waitFor(() => out.every((i) => i.app.cache.isAvailable()), 20_000, 'cluster connections')
    return out
  }
  async function closeAll (): Promise<void> {
    for (const app of apps.splice(0)) await app.close()
  }
  async function recover (killed: number): Promise<void> {
    for (const p of proxies.values()) p.setReplicationDelay(0)
    await cluster.restart(killed)
    await cluster.waitHealthy({ fullyReplicated: true, timeoutMs: 60_000 })
  }

  it('a replica that missed the last invalidation is promoted: no read serves the entry it still holds', async () => {
    // The org's replica lags 150 ms behind its primary; a change is made through A; the moment A's client hears of
    // it, the primary is killed and the replica, promoted, is all that is left — without the invalidation.
    const [A, B] = await instances({ prefix: newPrefix(), env: { CACHE_TTL_SECONDS: '10' } })
    const f = await createOrgFixture(db.db, { units: 1 })
    const [alert] = await db.db.insert(alerts).values({
      organizationId: f.org.id, unitId: f.units[0]!.id, type: 'temperature_excursion', severity: 'warning', status: 'active', threshold: 'temp_max', triggerTemperature: 9
    }).returning()
    await A!.app.dashboard.readThrough.invalidate({ organizationId: f.org.id, events: [], orgWide: true })
    const headers = { authorization: `Bearer ${A!.app.tokens.sign({ sub: 'manager', orgs: { [f.org.id]: 'manager' } })}` }
    const readB = async () => {
      const res = await fetch(`${B!.base}/api/orgs/${f.org.id}/dashboard/alerts/count`, { headers })
      return { status: res.status, body: await res.json() as Record<string, number>, cache: res.headers.get('x-cache') }
    }
    await readB()
    expect((await readB()).cache).toBe('hit') // B holds the pre-change entry: { unresolved: 1, acknowledged: 0 }

    const entryKey = A!.app.dashboard.keys.entry({ queryType: 'alerts_count', orgId: f.org.id })
    const primary = await cluster.primaryOf(entryKey)
    const [replica] = await cluster.replicasOf(primary)
    expect(replica).toBeDefined()
    proxies.get(primary)!.setReplicationDelay(150)

    const socket = await connectClient(A!.base, A!.app.tokens.sign({ sub: 'viewer', orgs: { [f.org.id]: 'viewer' } }))
    const killed = new Promise<void>((resolve) => socket.once('alertAcknowledged', () => { void cluster.kill(primary).then(resolve) }))
    const res = await fetch(`${A!.base}/api/orgs/${f.org.id}/alerts/${alert!.id}/acknowledge`, { method: 'POST', headers })
    expect(res.status).toBe(200)
    await killed
    socket.disconnect()

    // B, read by a client that was told, until caching is back: every answer must show the acknowledgement.
    const seen: Array<{ cache: string | null, body: Record<string, number> }> = []
    let survivor: unknown = null
    await waitFor(async () => {
      const r = await readB()
      expect(r.status).toBe(200)
      seen.push({ cache: r.cache, body: r.body })
      // The promoted replica really holds the pre-change entry (what a plain GET would have served).
      if (survivor === null && await cluster.primaryOf(entryKey) === replica) survivor = await cluster.on(replica!, 'GETRANGE', entryKey, HEADER_BYTES, -1)
      return r.cache === 'hit'
    }, 40_000, 'B caching again after the failover')
    const fenced = await B!.app.metrics.registry.getSingleMetricAsString('dashboard_cache_failover_fence_total')
    await closeAll()
    await recover(primary)
    const stale = seen.filter((s) => s.body.acknowledged !== 1)
    const outcomes = seen.reduce<Record<string, number>>((m, s) => ({ ...m, [String(s.cache)]: (m[String(s.cache)] ?? 0) + 1 }), {})
    console.log('cluster: lagging replica promoted', JSON.stringify({ reads: seen.length, stale: stale.length, outcomes, survivor }))
    expect(JSON.parse(String(survivor))).toMatchObject({ unresolved: 1, acknowledged: 0 })
    expect(stale).toEqual([])
    expect(fenced).toMatch(/dashboard_cache_failover_fence_total [1-9]/)
  }, 120_000)

  it('a primary killed during a stream of events: zero stale reads, zero lost readings, caching resumes', async () => {
    const prefix = newPrefix()
    const [A, B] = await instances({ prefix, env: { CACHE_TTL_SECONDS: '5' } })
    // An organization whose entries and room channel share the queue's shard: the kill takes its cache entries,
    // its events' fan-out and BullMQ down at once.
    const queueSlotPrimary = await cluster.primaryOf(`{${prefix}bull}:ingestion:id`)
    let f: OrgFixture | undefined
    for (let i = 0; i < 150 && !f; i++) {
      const candidate = await createOrgFixture(db.db, { units: 1 })
      if (await cluster.primaryOf(A!.app.dashboard.keys.fence(candidate.org.id)) === queueSlotPrimary &&
        await cluster.primaryOf(`${prefix}socket.io#/#org:${candidate.org.id}#`) === queueSlotPrimary) f = candidate
    }
    expect(f).toBeDefined()
    const fx = f!
    expect(clusterSlot(A!.app.dashboard.keys.fence(fx.org.id))).not.toBe(clusterSlot(`{${prefix}bull}`))
    const token = A!.app.tokens.sign({ sub: 'viewer', orgs: { [fx.org.id]: 'viewer' } })
    let r: FailoverStreamResult
    try {
      r = await streamThroughPrimaryKill({
        writer: A!.app,
        bases: [A!.base, B!.base],
        db: db.db,
        fixture: fx,
        token,
        kill: () => cluster.kill(queueSlotPrimary),
        failedOver: async () => await cluster.primaryOf(A!.app.dashboard.keys.fence(fx.org.id)).catch(() => queueSlotPrimary) !== queueSlotPrimary
      })
    } finally {
      await closeAll()
      await recover(queueSlotPrimary)
    }
    console.log('cluster: primary killed mid-stream', JSON.stringify({ ...r.figures, readingsStored: r.readingsStored, killedAtMs: r.killedAtMs, failedOverAtMs: r.failedOverAtMs, resumedAtMs: r.resumedAtMs }))
    expectFreshThroughFailover(r)
  }, 240_000)
})
