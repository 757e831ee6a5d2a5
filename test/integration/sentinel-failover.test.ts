import { eq, sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { App } from '../../src/app.js'
import { alerts, units } from '../../src/db/schema.js'
import { rows } from '../../src/infra/postgres.js'
import { HEADER_BYTES } from '../../src/features/dashboard/envelope.js'
import { buildTestApp, newPrefix } from '../helpers/fixture.js'
import { createTestDatabase, type TestDatabase } from '../helpers/db.js'
import { connectClient, runEventStream } from '../helpers/event-stream.js'
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
    for (const worker of [true, false]) {
      const app = await buildTestApp({ database: db, prefix, env: all, worker })
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
    const headers = { authorization: `Bearer ${token}` }
    const cacheOf = async (base: string) => (await fetch(`${base}/api/orgs/${fx.org.id}/dashboard/units/status`, { headers })).headers.get('x-cache')
    const primary = await group.waitHealthy({ replicas: 1 })
    let killedAt = -1
    let failedOverAt = -1
    let resumedAt = -1
    let resumedRound = -1
    const t = performance.now()
    let figures: Awaited<ReturnType<typeof runEventStream>>
    let stored: { n: number } | undefined
    try {
      figures = await runEventStream({
        bases: [A!.base, B!.base],
        fixture: fx,
        token,
        roundTimeoutMs: 4000,
        ingest: async (readings) => (await A!.app.inject({
          method: 'POST', url: '/api/ingest/readings', headers: { 'x-api-key': fx.apiKey }, payload: { readings: readings.map((r) => ({ ...r, recordedAt: r.recordedAt.toISOString() })) }
        })).statusCode,
        between: async (round) => {
          if (round === 40) {
            killedAt = performance.now() - t
            await group.kill(primary)
          } else if (killedAt >= 0 && failedOverAt < 0) {
            const now = await group.currentPrimary()
            if (now !== null && now !== primary) failedOverAt = performance.now() - t
          } else if (failedOverAt >= 0 && resumedAt < 0) {
            if (await cacheOf(A!.base) === 'hit' && await cacheOf(B!.base) === 'hit') {
              resumedAt = performance.now() - t
              resumedRound = round
            }
          }
        },
        until: (x) => (resumedRound >= 0 && x.rounds >= resumedRound + 40) || x.rounds >= 800
      })
      const last = new Date()
      await A!.app.inject({ method: 'POST', url: '/api/ingest/readings', headers: { 'x-api-key': fx.apiKey }, payload: { readings: [{ deviceEui: fx.devices[0]!.deviceEui, temperature: 5, recordedAt: last.toISOString() }] } })
      await waitFor(async () => (await db.db.select().from(units).where(eq(units.id, fx.units[0]!.id)))[0]!.lastReadingAt?.getTime() === last.getTime(), 15_000, 'the last reading evaluated')
      ;[stored] = await rows<{ n: number }>(db.db, sql`select count(*)::int as n from sensor_readings where organization_id = ${fx.org.id}`)
    } finally {
      await closeAll()
      await recover(primary)
    }
    console.log('sentinel: primary killed mid-stream', JSON.stringify({ ...figures, readingsStored: stored!.n - 1, killedAtMs: Math.round(killedAt), failedOverAtMs: Math.round(failedOverAt), resumedAtMs: Math.round(resumedAt) }))
    expect(figures.failedReads).toEqual([])
    expect(figures.staleReads).toEqual([])
    expect(figures.stale).toBe(0)
    expect(stored!.n - 1).toBe(figures.readingsSent)
    expect(failedOverAt).toBeGreaterThan(killedAt)
    expect(resumedAt).toBeGreaterThan(failedOverAt)
    expect(figures.events).toBeGreaterThanOrEqual(200)
    expect(figures.outcomes.bypass).toBeGreaterThan(0)
    expect(figures.outcomes.hit).toBeGreaterThan(0)
  }, 240_000)
})
