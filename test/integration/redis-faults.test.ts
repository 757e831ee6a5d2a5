import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { App } from '../../src/app.js'
import { rows } from '../../src/infra/postgres.js'
import { buildTestApp, newPrefix } from '../helpers/fixture.js'
import { createTestDatabase, type TestDatabase } from '../helpers/db.js'
import { createOrgFixture, type OrgFixture } from '../helpers/fixtures.js'
import { startPrivateRedis, waitFor, type PrivateRedis } from '../helpers/redis.js'

/**
 * The failure behaviour of docs/caching.md with a real outage: a private redis-server is killed mid-test and
 * started again (a private one: stopping the shared Redis would break every other test file).
 */
describe('Redis stopped mid-test', () => {
  let db: TestDatabase
  let redis: PrivateRedis
  let app: App
  let f: OrgFixture
  const start = Date.now() - 120 * 60_000

  beforeAll(async () => {
    db = await createTestDatabase()
    redis = await startPrivateRedis()
    app = await buildTestApp({ database: db, prefix: newPrefix(), redis: redis.url, env: { REDIS_COMMAND_TIMEOUT_MS: '200' }, worker: true })
    await app.ready()
    await waitFor(() => app.cache.isAvailable(), 5000, 'cache ready')
    f = await createOrgFixture(db.db, { units: 4 })
  })
  afterAll(async () => {
    await app?.close()
    await redis?.stop()
    await db?.drop()
  })

  const read = (path: string) => app.inject({ url: `/api/orgs/${f.org.id}${path}`, headers: { authorization: `Bearer ${app.tokens.sign({ sub: 'viewer', orgs: { [f.org.id]: 'viewer' } })}` } })
  const paths = ['/dashboard', '/dashboard/units/status', '/dashboard/alerts/count', '/dashboard/devices/online']
  async function ingest (minute: number, temperature: number) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/ingest/readings',
      headers: { 'x-api-key': f.apiKey },
      payload: { readings: f.devices.map((d) => ({ deviceEui: d.deviceEui, temperature, recordedAt: new Date(start + minute * 60_000).toISOString() })) }
    })
    expect(res.statusCode).toBe(202)
    return res.json() as { accepted: number }
  }

  it('serves dashboards from PostgreSQL, reports degraded, keeps every reading, and resumes caching by itself', async () => {
    for (const p of paths) await read(p)
    expect((await read(paths[1]!)).headers['x-cache']).toBe('hit')

    await redis.stop()
    await waitFor(() => !app.cache.isAvailable(), 5000, 'disconnect noticed')

    for (const p of paths) {
      const res = await read(p)
      expect(res.statusCode, p).toBe(200)
      expect(res.headers['x-cache'], p).toBe('bypass')
    }
    const health = await app.inject({ url: '/health' })
    expect(health.statusCode).toBe(200)
    expect(health.json().status).toBe('degraded')
    expect(health.json().checks.redis.ok).toBe(false)
    expect(health.json().checks.database.ok).toBe(true)

    let accepted = 0
    for (let m = 0; m < 10; m++) accepted += (await ingest(m, m % 2 === 0 ? 12 : 5)).accepted
    expect(accepted).toBe(40)
    const [stored] = await rows<{ n: number }>(db.db, sql`select count(*)::int as n from sensor_readings where organization_id = ${f.org.id}`)
    expect(stored!.n).toBe(40)
    // Evaluated inline while the queue was down: the last reading (5 °C after 12 °C) left the units normal.
    const status = await read('/dashboard/units/status')
    expect(status.json()).toMatchObject({ total: 4, normal: 4 })

    await redis.start()
    await waitFor(() => app.cache.isAvailable(), 10_000, 'reconnect')
    await waitFor(async () => (await read(paths[1]!)).headers['x-cache'] === 'hit', 10_000, 'caching resumed')
    const healthAfter = await app.inject({ url: '/health' })
    expect(healthAfter.statusCode).toBe(200)
    // The last answer is in the failure message: which check stayed down.
    let last: unknown = null
    await waitFor(async () => { const body = (await app.inject({ url: '/health' })).json(); last = body; return body.status === 'ok' }, 10_000, 'health ok')
      .catch((err: Error) => { throw new Error(`${err.message}; last /health: ${JSON.stringify(last)}`) })
  })
})

describe('an app closed right after start-up', () => {
  let db: TestDatabase
  beforeAll(async () => { db = await createTestDatabase() })
  afterAll(async () => { await db?.drop() })

  it('leaves no Redis command unanswered behind it (no unhandled rejection)', async () => {
    // Connections close while their start-up commands (the socket.io adapter's SUBSCRIBEs, BullMQ's set-up) are
    // still queued: each must be handled by whoever sent it.
    const rejections: unknown[] = []
    const onRejection = (reason: unknown) => { rejections.push(reason) }
    process.on('unhandledRejection', onRejection)
    try {
      for (let i = 0; i < 8; i++) {
        const app = await buildTestApp({ database: db, prefix: newPrefix(), redis: true, worker: i % 2 === 0, sweeper: true })
        if (i % 4 < 2) await app.ready()
        await app.close()
      }
      // Rejections surface on a later turn of the event loop.
      await new Promise((resolve) => setTimeout(resolve, 300))
    } finally {
      process.off('unhandledRejection', onRejection)
    }
    expect(rejections.map((r) => (r as Error).message ?? String(r))).toEqual([])
  })
})
