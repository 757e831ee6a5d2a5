import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import { Job, Queue } from 'bullmq'
import { and, eq, inArray } from 'drizzle-orm'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { io as connectClient, type Socket } from 'socket.io-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig, type Env } from '../../src/config.js'
import { alerts, apiKeys, devices, organizations, sites, units } from '../../src/db/schema.js'
import type { ChangeEvent, UnitUpdatePayload } from '../../src/features/changes/events.js'
import { INGESTION_QUEUE } from '../../src/features/queue/ingestion-queue.js'
import type { Db } from '../../src/infra/postgres.js'
import { createTestDatabase, type TestDatabase } from '../helpers/db.js'
import { buildTestApp, newPrefix, testEnv } from '../helpers/fixture.js'
import { createOrgFixture, type OrgFixture } from '../helpers/fixtures.js'
import { startPrivateRedis, waitFor, type PrivateRedis } from '../helpers/redis.js'

/**
 * Two deployments (each its own database, REDIS_KEY_PREFIX and worker) on one private redis-server, so that SCAN
 * sees only their keys. They share the JWT secret and hold an organization with the same ids (the worst case: the
 * same rooms, the same cache keys but for the prefix), and must still never meet: evaluation jobs
 * (src/features/queue), dashboard entries (src/features/dashboard/keys.ts), invalidations (the cache:invalidate
 * channel) and Socket.io events (src/features/realtime/index.ts). A worker handed a job it cannot resolve fails it
 * at once (src/features/evaluation/service.ts `evaluate`).
 */

/** Copies an organization with its site, units, devices and API key, ids included, into another database. */
async function copyOrganization (from: Db, to: Db, orgId: string): Promise<void> {
  await to.insert(organizations).values(await from.select().from(organizations).where(eq(organizations.id, orgId)))
  await to.insert(sites).values(await from.select().from(sites).where(eq(sites.organizationId, orgId)))
  await to.insert(units).values(await from.select().from(units).where(eq(units.organizationId, orgId)))
  await to.insert(devices).values(await from.select().from(devices).where(eq(devices.organizationId, orgId)))
  await to.insert(apiKeys).values(await from.select().from(apiKeys).where(eq(apiKeys.organizationId, orgId)))
}

/** A client that has connected (resolves) or been refused (rejects). */
function open (clients: Socket[], url: string, token: string): Promise<Socket> {
  const socket = connectClient(url, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true })
  clients.push(socket)
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket))
    socket.once('connect_error', reject)
  })
}
function record (socket: Socket): UnitUpdatePayload[] {
  const received: UnitUpdatePayload[] = []
  socket.on('unitUpdate', (p: UnitUpdatePayload) => { received.push(p) })
  return received
}
const unitUpdate = (organizationId: string, unitId: string): ChangeEvent => ({
  name: 'unitUpdate',
  payload: { organizationId, unitId, state: 'too_hot', previousState: 'normal', lastTemperature: 9.5, lastReadingAt: new Date().toISOString() }
})
/** Through the write path, as every change is emitted (src/features/changes/pipeline.ts). */
const publish = (app: App, events: ChangeEvent[]) => app.changes.commit(async () => ({ value: undefined, events }))

async function metric (app: App, name: string, labels = ''): Promise<number> {
  const text = (await app.inject({ url: '/metrics' })).body
  const m = new RegExp(`^${name}${labels.replace(/[{}]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)
  return m ? Number(m[1]) : 0
}

describe('two deployments on one Redis, told apart by REDIS_KEY_PREFIX', () => {
  let redis: PrivateRedis
  let dbA: TestDatabase
  let dbB: TestDatabase
  let appA: App
  let appA2: App
  let appB: App
  const urls = { a: '', a2: '', b: '' }
  const prefixA = newPrefix()
  const prefixB = newPrefix()
  /** Deployment A's log lines (JSON), at warn and above. */
  const logA: Array<Record<string, unknown>> = []
  let shared: OrgFixture
  let onlyB: OrgFixture
  let otherA: OrgFixture
  const clients: Socket[] = []

  beforeAll(async () => {
    redis = await startPrivateRedis()
    dbA = await createTestDatabase()
    dbB = await createTestDatabase()
    shared = await createOrgFixture(dbA.db, { units: 3 })
    await copyOrganization(dbA.db, dbB.db, shared.org.id)
    onlyB = await createOrgFixture(dbB.db, { units: 2 })
    otherA = await createOrgFixture(dbA.db, { units: 2 })

    // Deployment A is built with a logger of the test's, to read what its worker logs.
    const sink = new Writable({ write (chunk, _enc, done) { for (const line of String(chunk).split('\n')) if (line) logA.push(JSON.parse(line) as Record<string, unknown>); done() } })
    const env = testEnv({ redis: redis.url, prefix: prefixA })
    appA = await buildApp({ config: loadConfig(env as Partial<Record<keyof Env, string>>), database: dbA, worker: true, logger: pino({ level: 'warn' }, sink) })
    appA2 = await buildTestApp({ database: dbA, prefix: prefixA, redis: redis.url })
    appB = await buildTestApp({ database: dbB, prefix: prefixB, redis: redis.url, worker: true })
    urls.a = await appA.listen({ port: 0, host: '127.0.0.1' })
    urls.a2 = await appA2.listen({ port: 0, host: '127.0.0.1' })
    urls.b = await appB.listen({ port: 0, host: '127.0.0.1' })
    for (const app of [appA, appA2, appB]) {
      await waitFor(() => app.cache.isAvailable() && app.queue!.ready(), 10_000, 'Redis connections')
    }
  })
  afterAll(async () => {
    for (const c of clients) c.close()
    for (const app of [appB, appA2, appA]) await app?.close()
    await dbA?.drop()
    await dbB?.drop()
    await redis?.stop()
  })

  const viewer = (orgId: string) => ({ authorization: `Bearer ${appA.tokens.sign({ sub: 'viewer', orgs: { [orgId]: 'viewer' } })}` })
  async function ingest (app: App, fx: OrgFixture, temperature: number, at: Date) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/ingest/readings',
      headers: { 'x-api-key': fx.apiKey },
      payload: { readings: fx.devices.map((d) => ({ deviceEui: d.deviceEui, temperature, recordedAt: at.toISOString() })) }
    })
    expect(res.statusCode).toBe(202)
  }
  const unitsOf = (db: Db, ids: string[]) => db.select().from(units).where(inArray(units.id, ids))

  it("each deployment's readings are evaluated by its own worker: states change and alerts open on both", async () => {
    const queuedA = await metric(appA, 'coldboard_ingestion_batches_total', '{path="queue"}')
    const queuedB = await metric(appB, 'coldboard_ingestion_batches_total', '{path="queue"}')
    const start = Date.now() - 30 * 60_000
    const batches = 12
    // Same organization, units and API key in both; A too hot, B too cold, batches interleaved.
    for (let i = 0; i < batches; i++) {
      await ingest(appA, shared, 12 + i / 10, new Date(start + i * 60_000))
      await ingest(appB, shared, -5 - i / 10, new Date(start + i * 60_000))
    }
    const last = new Date(start + (batches - 1) * 60_000)
    const ids = shared.units.map((u) => u.id)
    await waitFor(async () => (await unitsOf(dbA.db, ids)).every((u) => u.state === 'too_hot' && u.lastReadingAt?.getTime() === last.getTime()), 20_000, "A's units evaluated")
    await waitFor(async () => (await unitsOf(dbB.db, ids)).every((u) => u.state === 'too_cold' && u.lastReadingAt?.getTime() === last.getTime()), 20_000, "B's units evaluated")
    // Through the queue, not inline.
    expect(await metric(appA, 'coldboard_ingestion_batches_total', '{path="queue"}')).toBe(queuedA + batches)
    expect(await metric(appB, 'coldboard_ingestion_batches_total', '{path="queue"}')).toBe(queuedB + batches)

    const openA = await dbA.db.select().from(alerts).where(and(eq(alerts.organizationId, shared.org.id), eq(alerts.status, 'active')))
    const openB = await dbB.db.select().from(alerts).where(and(eq(alerts.organizationId, shared.org.id), eq(alerts.status, 'active')))
    expect(openA.map((a) => [a.unitId, a.threshold]).sort()).toEqual(ids.map((id) => [id, 'temp_max']).sort())
    expect(openB.map((a) => [a.unitId, a.threshold]).sort()).toEqual(ids.map((id) => [id, 'temp_min']).sort())
    // Neither worker was handed the other's jobs.
    expect(await metric(appA, 'coldboard_jobs_unresolvable_total')).toBe(0)
    expect(await metric(appB, 'coldboard_jobs_unresolvable_total')).toBe(0)
    for (const [app, prefix] of [[appA, prefixA], [appB, prefixB]] as const) {
      const queue = new Queue(INGESTION_QUEUE, { connection: { url: redis.url }, prefix: app.config.queuePrefix })
      try {
        expect(app.config.queuePrefix.startsWith(prefix)).toBe(true)
        expect(await queue.getJobCounts('failed', 'waiting', 'active', 'delayed')).toEqual({ failed: 0, waiting: 0, active: 0, delayed: 0 })
        expect(await queue.getJobCounts('completed')).toEqual({ completed: batches })
      } finally {
        await queue.close()
      }
    }
  })

  it("dashboards never read the other deployment's entries, and invalidations do not cross", async () => {
    const path = `/api/orgs/${shared.org.id}/dashboard/units/status`
    const read = (app: App) => app.inject({ url: path, headers: viewer(shared.org.id) })
    const a1 = await read(appA)
    expect(a1.statusCode).toBe(200)
    expect(a1.json()).toMatchObject({ total: 3, too_hot: 3, too_cold: 0 })
    await waitFor(async () => (await read(appA)).headers['x-cache'] === 'hit', 5000, "A's entry cached")

    // Same organization id, same route: B computes its own answer, and caches it under its own key.
    const b1 = await read(appB)
    expect(b1.headers['x-cache']).toBe('miss')
    expect(b1.json()).toMatchObject({ total: 3, too_hot: 0, too_cold: 3 })
    await waitFor(async () => (await read(appB)).headers['x-cache'] === 'hit', 5000, "B's entry cached")
    expect((await read(appB)).json()).toMatchObject({ too_cold: 3 })
    expect((await read(appA)).json()).toMatchObject({ too_hot: 3 })

    // A write in B invalidates B's entry; A's stays, with A's numbers, on both of A's instances.
    const res = await appB.inject({ method: 'PATCH', url: `/api/orgs/${shared.org.id}/units/${shared.units[0]!.id}`, headers: { authorization: `Bearer ${appB.tokens.sign({ sub: 'm', orgs: { [shared.org.id]: 'manager' } })}` }, payload: { isActive: false } })
    expect(res.statusCode).toBe(200)
    // (B's entry was deleted and, being watched, reloaded with B's new numbers: hit or miss, it is fresh.)
    const b2 = await read(appB)
    expect(b2.json()).toMatchObject({ total: 2, too_cold: 2 })
    for (const app of [appA, appA2]) {
      const a = await read(app)
      expect(a.headers['x-cache']).toBe('hit')
      expect(a.json()).toMatchObject({ total: 3, too_hot: 3 })
    }
  })

  it("Socket.io events reach the deployment's instances and never the other deployment's clients", async () => {
    const token = appA.tokens.sign({ sub: 'viewer', orgs: { [shared.org.id]: 'viewer' } })
    const onA2 = record(await open(clients, urls.a2, token))
    const onB = record(await open(clients, urls.b, token))
    const unitOfA = randomUUID()
    // Emitted on A: A's other instance receives it through Redis, so A's PUBLISH has been delivered to every
    // subscriber of that channel by then.
    await publish(appA, [unitUpdate(shared.org.id, unitOfA)])
    await waitFor(() => onA2.some((p) => p.unitId === unitOfA), 5000, "A's event on A's other instance")
    // Then a marker on B, through B's own Redis channel: it arrives after anything published before it.
    const marker = randomUUID()
    await publish(appB, [unitUpdate(shared.org.id, marker)])
    await waitFor(() => onB.some((p) => p.unitId === marker), 5000, "B's marker")
    expect(onB.map((p) => p.unitId)).toEqual([marker])
    expect(onA2.map((p) => p.unitId)).toEqual([unitOfA])
  })

  it('every key and channel each app uses starts with its prefix', async () => {
    // A failed authentication creates a counter (src/features/auth/limits.ts) in each.
    for (const app of [appA, appB]) {
      const res = await app.inject({ method: 'POST', url: '/api/ingest/readings', headers: { 'x-api-key': 'cb_wrong' }, payload: { readings: [] } })
      expect(res.statusCode).toBe(401)
    }
    const client = new Redis(redis.url)
    try {
      const keys: string[] = []
      let cursor = '0'
      do {
        const [next, batch] = await client.scan(cursor, 'COUNT', 1000)
        keys.push(...batch)
        cursor = next
      } while (cursor !== '0')
      const outside = keys.filter((k) => !k.startsWith(prefixA) && !k.startsWith(prefixB))
      expect(outside).toEqual([])
      for (const prefix of [prefixA, prefixB]) {
        const mine = keys.filter((k) => k.startsWith(prefix))
        // Queue, dashboard entries and fences, failure counters: each deployment has some of each.
        expect(mine.some((k) => k.startsWith(`${prefix}bull:${INGESTION_QUEUE}:`)), prefix).toBe(true)
        expect(mine.some((k) => k.startsWith(`${prefix}dashboard:`)), prefix).toBe(true)
        expect(mine.some((k) => k.startsWith(`${prefix}auth-failures`)), prefix).toBe(true)
      }
      const channels = await client.pubsub('CHANNELS', '*') as string[]
      expect(channels.filter((c) => !c.startsWith(prefixA) && !c.startsWith(prefixB))).toEqual([])
      for (const prefix of [prefixA, prefixB]) {
        expect(channels).toContain(`${prefix}cache:invalidate`)
        expect(channels.some((c) => c.startsWith(`${prefix}socket.io`)), prefix).toBe(true)
      }
    } finally {
      client.disconnect()
    }
  })

  describe('a job the worker cannot resolve is failed at once, counted and logged, never completed', () => {
    let producer: Queue
    beforeAll(async () => {
      // Straight into deployment A's queue, as a stray producer sharing its Redis and queue prefix would.
      producer = new Queue(INGESTION_QUEUE, { connection: { url: redis.url }, prefix: appA.config.queuePrefix })
      // Too-hot readings stored in both of A's organizations and not evaluated: a job that wrongly ran would move their units.
      for (const fx of [otherA, shared]) {
        await appA.ingestion.storeReadings(fx.org.id, fx.devices.map((d) => ({ deviceEui: d.deviceEui, temperature: 30, recordedAt: new Date().toISOString() })))
      }
    })
    afterAll(async () => { await producer?.close() })

    const cases: Array<[string, () => Record<string, unknown>]> = [
      ['an organization of another deployment', () => ({ organizationId: onlyB.org.id, unitIds: onlyB.units.map((u) => u.id) })],
      ['an organization that exists nowhere', () => ({ organizationId: randomUUID(), unitIds: [randomUUID()] })],
      ['units of another organization of this deployment', () => ({ organizationId: shared.org.id, unitIds: otherA.units.map((u) => u.id) })],
      // A job of one unit is checked by the unit's lock alone (src/features/evaluation/service.ts): the same refusal.
      ['one unit of another organization of this deployment', () => ({ organizationId: shared.org.id, unitIds: [otherA.units[0]!.id] })],
      ['one unit that exists nowhere, in an organization of this deployment', () => ({ organizationId: shared.org.id, unitIds: [randomUUID()] })],
      ['units of its organization and of another one', () => ({ organizationId: shared.org.id, unitIds: [shared.units[1]!.id, otherA.units[0]!.id] })],
      ['no units', () => ({ organizationId: shared.org.id, unitIds: [] })],
      ['a malformed organization id', () => ({ organizationId: 'not-a-uuid', unitIds: [shared.units[0]!.id] })]
    ]
    it.each(cases)('%s', async (_what, data) => {
      const before = await unitsOf(dbA.db, [...otherA.units, ...shared.units].map((u) => u.id))
      const failures = await metric(appA, 'coldboard_jobs_unresolvable_total')
      const logged = logA.length
      const payload = data()
      const job = await producer.add('process', payload as never, { attempts: 5, backoff: { type: 'fixed', delay: 50 } })
      await waitFor(async () => ['failed', 'completed'].includes(await job.getState()), 15_000, 'the job to settle')
      const settled = (await Job.fromId(producer, job.id!))!
      expect(await settled.getState()).toBe('failed')
      // Once: no retry is scheduled, however many attempts the job allowed.
      expect(settled.attemptsMade).toBe(1)
      expect(settled.failedReason).toMatch(/no organization/)
      expect(await metric(appA, 'coldboard_jobs_unresolvable_total')).toBe(failures + 1)
      // The evaluation's error, then the queue's line about the failed job (src/features/queue/ingestion-queue.ts).
      await waitFor(() => logA.slice(logged).some((l) => l.jobId === job.id), 5000, "the queue's log line for the job")
      expect(logA.slice(logged)).toContainEqual(expect.objectContaining({ level: 50, component: 'evaluation', job: payload }))
      // Which must not announce a retry that will never come.
      const aboutJob = logA.slice(logged).filter((l) => l.jobId === job.id)
      expect(aboutJob.filter((l) => /retry/.test(String(l.msg)))).toEqual([])
      expect(await unitsOf(dbA.db, before.map((u) => u.id))).toEqual(expect.arrayContaining(before))
      expect(before.every((u) => u.lastTemperature !== 30)).toBe(true)
    })
  })
})
