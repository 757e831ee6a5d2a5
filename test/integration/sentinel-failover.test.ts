import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { App } from '../../src/app.js'
import { alerts } from '../../src/db/schema.js'
import { HEADER_BYTES } from '../../src/features/dashboard/envelope.js'
import { buildTestApp, newPrefix, servedWorker } from '../helpers/fixture.js'
import { createTestDatabase, type TestDatabase } from '../helpers/db.js'
import { connectClient } from '../helpers/event-stream.js'
import { expectFreshThroughFailover, streamThroughPrimaryKill, type FailoverStreamResult } from '../helpers/failover-stream.js'
import { createOrgFixture } from '../helpers/fixtures.js'
import { startSentinelGroup, startTcpProxy, waitFor, type SentinelGroup } from '../helpers/redis.js'

/**
 * Fresh through a Sentinel failover: a primary and its replica (which replicates through a TCP proxy, so that a
 * test can make it lag) watched by three sentinels, all started by the test. The primary is killed with SIGKILL;
 * the sentinels promote the replica; every instance finds the new primary through them.
 */
describe('Sentinel failover', () => {
  let db: TestDatabase
  let group: SentinelGroup
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>
  const apps: App[] = []

  beforeAll(async () => {
    db = await createTestDatabase()
    group = await startSentinelGroup({
      password: 'sentinel-test-password',
      replicateFrom: async (primaryPort) => { proxy = await startTcpProxy(primaryPort); return proxy.port }
    })
  }, 120_000)
  afterAll(async () => {
    for (const app of apps) await app.close()
    await group?.stop()
    await proxy?.close()
    await db?.drop()
  })

  async function instances (env: Record<string, string>): Promise<Array<{ app: App, base: string }>> {
    const prefix = newPrefix()
    const all = { REDIS_DISABLED: 'false', REDIS_SENTINELS: group.sentinelsEnv, REDIS_SENTINEL_NAME: group.name, REDIS_PASSWORD: group.password!, ...env }
    const out: Array<{ app: App, base: string }> = []
    // A runs the worker with the sweep timer, as `serve` does (its watchdog replaces a worker stuck after the
    // failover); B is a peer without either.
    for (const worker of [true, false]) {
      const app = await buildTestApp({ database: db, prefix, ...(worker ? servedWorker(all) : { env: all }) })
      apps.push(app)
      out.push({ app, base: await app.listen({ port: 0, host: '127.0.0.1' }) })
    }
    await waitFor(() => out.every((i) => i.app.cache.isAvailable()), 20_000, 'sentinel connections')
    return out
  }
  async function closeAll (): Promise<void> {
    for (const app of apps.splice(0)) await app.close()
  }
  /** Starts the killed node again (a replica of the new primary) and waits for it to be in sync. */
  async function recover (killed: number): Promise<void> {
    proxy.setReplicationDelay(0)
    await group.restart(killed)
    await group.waitHealthy({ replicas: 1, timeoutMs: 60_000 })
  }

  it('a replica that missed the last invalidation is promoted: no read serves the entry it still holds', async () => {
    const [A, B] = await instances({ CACHE_TTL_SECONDS: '10' })
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
    expect((await readB()).cache).toBe('hit')

    const primary = await group.waitHealthy({ replicas: 1 })
    expect(primary).toBe(group.primary.port)
    proxy.setReplicationDelay(150)
    const socket = await connectClient(A!.base, A!.app.tokens.sign({ sub: 'viewer', orgs: { [f.org.id]: 'viewer' } }))
    const killed = new Promise<void>((resolve) => socket.once('alertAcknowledged', () => { void group.kill(primary).then(resolve) }))
    const res = await fetch(`${A!.base}/api/orgs/${f.org.id}/alerts/${alert!.id}/acknowledge`, { method: 'POST', headers })
    expect(res.status).toBe(200)
    await killed
    socket.disconnect()

    const entryKey = A!.app.dashboard.keys.entry({ queryType: 'alerts_count', orgId: f.org.id })
    const seen: Array<{ cache: string | null, body: Record<string, number> }> = []
    let survivor: unknown = null
    try {
      await waitFor(async () => {
        const r = await readB()
        expect(r.status).toBe(200)
        seen.push({ cache: r.cache, body: r.body })
        if (survivor === null && await group.currentPrimary() === group.replica.port) survivor = await group.on(group.replica.port, 'GETRANGE', entryKey, HEADER_BYTES, -1)
        return r.cache === 'hit'
      }, 90_000, 'B caching again after the failover')
    } finally {
      // Whatever happened, the next test starts from a healthy pair.
      await closeAll()
      await recover(primary)
    }
    const stale = seen.filter((s) => s.body.acknowledged !== 1)
    const outcomes = seen.reduce<Record<string, number>>((m, s) => ({ ...m, [String(s.cache)]: (m[String(s.cache)] ?? 0) + 1 }), {})
    console.log('sentinel: lagging replica promoted', JSON.stringify({ reads: seen.length, stale: stale.length, outcomes, survivor }))
    expect(JSON.parse(String(survivor))).toMatchObject({ unresolved: 1, acknowledged: 0 })
    expect(stale).toEqual([])
  }, 240_000)

  it('the primary killed during a stream of events: zero stale reads, zero lost readings, caching resumes', async () => {
    const [A, B] = await instances({ CACHE_TTL_SECONDS: '5' })
    const fx = await createOrgFixture(db.db, { units: 1 })
    const token = A!.app.tokens.sign({ sub: 'viewer', orgs: { [fx.org.id]: 'viewer' } })
    const primary = await group.waitHealthy({ replicas: 1 })
    let r: FailoverStreamResult
    try {
      r = await streamThroughPrimaryKill({
        writer: A!.app,
        bases: [A!.base, B!.base],
        db: db.db,
        fixture: fx,
        token,
        kill: () => group.kill(primary),
        failedOver: async () => { const now = await group.currentPrimary(); return now !== null && now !== primary }
      })
    } finally {
      // Whatever happened, the next test starts from a healthy pair.
      await closeAll()
      await recover(primary)
    }
    console.log('sentinel: primary killed mid-stream', JSON.stringify({ ...r.figures, readingsStored: r.readingsStored, killedAtMs: r.killedAtMs, failedOverAtMs: r.failedOverAtMs, resumedAtMs: r.resumedAtMs }))
    expectFreshThroughFailover(r)
  }, 240_000)
})
