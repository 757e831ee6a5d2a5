import { randomBytes } from 'node:crypto'
import { sql } from 'drizzle-orm'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig, type Env } from '../../src/config.js'
import { createDatabase } from '../../src/infra/postgres.js'
import { adminQuery, createTestDatabase, databaseUrl, type TestDatabase } from '../helpers/db.js'
import { testEnv, newPrefix } from '../helpers/fixture.js'
import { createOrgFixture, type OrgFixture } from '../helpers/fixtures.js'

/**
 * The PostgreSQL pool's limits (src/infra/postgres.ts, configured by PG_POOL_MAX, PG_ACQUIRE_TIMEOUT_MS and
 * PG_STATEMENT_TIMEOUT_MS in src/config.ts): a request that cannot get a connection in time, or whose statement runs
 * too long, is a 503 with Retry-After and the error body (src/errors.ts `databaseUnavailable`, the error handler of
 * src/http/index.ts), never a hang; migrations are exempt from the statement timeout.
 */

/** Fails the test if `p` has not settled within `ms`: a guard against a hang, not a measure of speed. */
function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (a hang)`)), ms) })
  ])
}

/** An app that builds its own pool from the environment, as `coldboard serve` does. */
async function appOn (database: TestDatabase, env: Record<string, string>): Promise<App> {
  const config = loadConfig(testEnv({ prefix: newPrefix(), env: { DATABASE_URL: database.url, ...env } }) as Partial<Record<keyof Env, string>>)
  const app = await buildApp({ config })
  await app.ready()
  return app
}

/** A statement cancelled by statement_timeout (SQLSTATE 57014), wherever Drizzle put the driver's error. */
function isStatementTimeout (err: unknown): boolean {
  for (let e = err as { code?: string, cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) if (e.code === '57014') return true
  return false
}

const serviceUnavailable = { error: { code: 'SERVICE_UNAVAILABLE', message: expect.any(String) } }

describe('pool exhausted: PG_POOL_MAX=1, PG_ACQUIRE_TIMEOUT_MS=300', () => {
  let database: TestDatabase
  let app: App
  let fx: OrgFixture

  beforeAll(async () => {
    database = await createTestDatabase()
    fx = await createOrgFixture(database.db, { units: 2 })
    app = await appOn(database, { PG_POOL_MAX: '1', PG_ACQUIRE_TIMEOUT_MS: '300' })
  })
  afterAll(async () => {
    await app?.close()
    await database?.drop()
  })

  const listUnits = () => app.inject({ url: `/api/orgs/${fx.org.id}/units`, headers: { authorization: `Bearer ${app.tokens.sign({ sub: 'v', orgs: { [fx.org.id]: 'viewer' } })}` } })

  it('answers 503 with Retry-After while the only connection is held, and 200 once it is free', async () => {
    expect((await listUnits()).statusCode).toBe(200)

    // The pool's one connection, held by a transaction until the test releases it.
    let release!: () => void
    const released = new Promise<void>((resolve) => { release = resolve })
    let holding!: () => void
    const held = new Promise<void>((resolve) => { holding = resolve })
    const transaction = app.db.transaction(async (tx) => {
      await tx.execute(sql`select 1`)
      holding()
      await released
    })
    try {
      await held
      const res = await within(listUnits(), 20_000, 'GET units with the pool exhausted')
      expect(res.statusCode).toBe(503)
      expect(res.json()).toEqual(serviceUnavailable)
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1)
      // Authenticated API-key requests too (the key is looked up in the database first).
      const ingest = await within(app.inject({
        method: 'POST',
        url: '/api/ingest/readings',
        headers: { 'x-api-key': fx.apiKey },
        payload: { readings: [{ deviceEui: fx.devices[0]!.deviceEui, temperature: 5, recordedAt: new Date(Date.now() - 60_000).toISOString() }] }
      }), 20_000, 'POST readings with the pool exhausted')
      expect(ingest.statusCode).toBe(503)
      expect(ingest.json()).toEqual(serviceUnavailable)
      expect(ingest.headers['retry-after']).toBeDefined()
      // /health answers too: its database check fails rather than hanging.
      const health = await within(app.inject({ url: '/health' }), 20_000, '/health with the pool exhausted')
      expect(health.json().checks.database.ok).toBe(false)
    } finally {
      release()
      await transaction
    }

    const again = await listUnits()
    expect(again.statusCode).toBe(200)
    expect(again.json()).toHaveLength(2)
  })
})

describe('slow statements: PG_STATEMENT_TIMEOUT_MS=300', () => {
  let database: TestDatabase
  let app: App
  let fx: OrgFixture
  let locker: pg.Client

  beforeAll(async () => {
    database = await createTestDatabase()
    fx = await createOrgFixture(database.db, { units: 2 })
    app = await appOn(database, { PG_STATEMENT_TIMEOUT_MS: '300' })
    locker = new pg.Client({ connectionString: database.url })
    await locker.connect()
  })
  afterAll(async () => {
    await locker?.end()
    await app?.close()
    await database?.drop()
  })

  const listUnits = () => app.inject({ url: `/api/orgs/${fx.org.id}/units`, headers: { authorization: `Bearer ${app.tokens.sign({ sub: 'v', orgs: { [fx.org.id]: 'viewer' } })}` } })

  it('cancels a statement that runs longer (57014)', async () => {
    const slow = within(app.db.execute(sql`select pg_sleep(5)`), 20_000, 'pg_sleep(5)')
    await expect(slow).rejects.toSatisfy(isStatementTimeout)
    // The connection is usable afterwards.
    await app.db.execute(sql`select pg_sleep(0.01)`)
  })

  it('a request whose statement waits past the timeout is a 503 with Retry-After, and is served again afterwards', async () => {
    expect((await listUnits()).statusCode).toBe(200)
    // Another session holds the table: the request's SELECT waits on the lock, past the statement timeout.
    await locker.query('begin')
    try {
      await locker.query('lock table units in access exclusive mode')
      const res = await within(listUnits(), 20_000, 'GET units behind a lock')
      expect(res.statusCode).toBe(503)
      expect(res.json()).toEqual(serviceUnavailable)
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    } finally {
      await locker.query('rollback')
    }
    const again = await listUnits()
    expect(again.statusCode).toBe(200)
    expect(again.json()).toHaveLength(2)
  })
})

describe('migrations are not subject to the statement timeout', () => {
  const name = `cb_t_mig_${randomBytes(5).toString('hex')}`
  beforeAll(async () => { await adminQuery(`CREATE DATABASE ${name}`) })
  afterAll(async () => { await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) })

  it('a fresh database migrates with a 1 ms statement timeout, which the pool does apply', async () => {
    const database = await createDatabase({ databaseUrl: databaseUrl(name), dataDir: '.coldboard-test', statementTimeoutMs: 1 })
    try {
      await database.migrate()
      // Every table is there (read on a session without the timeout).
      const check = new pg.Client({ connectionString: databaseUrl(name) })
      await check.connect()
      try {
        const { rows } = await check.query<{ t: string | null }>('select to_regclass(t) as t from unnest(array[\'organizations\', \'sites\', \'units\', \'devices\', \'sensor_readings\', \'alerts\', \'api_keys\']) t')
        expect(rows.every((r) => r.t !== null)).toBe(true)
      } finally {
        await check.end()
      }
      // The pool's own statements are limited: the timeout is in force, migrations merely exempt from it.
      await expect(database.db.execute(sql`select pg_sleep(0.5)`)).rejects.toSatisfy(isStatementTimeout)
    } finally {
      await database.close()
    }
  })
})
