import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll } from 'vitest'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig, type Env } from '../../src/config.js'
import type { Role } from '../../src/features/auth/tokens.js'
import type { ChangeEvent } from '../../src/features/changes/events.js'
import type { Database, Db } from '../../src/infra/postgres.js'
import { manualClock, systemClock, type Clock } from '../../src/lib/clock.js'
import { waitFor } from '../../src/lib/net.js'
import { createPgliteTestDatabase, createTestDatabase } from './db.js'
import { createOrgFixture, type OrgFixture } from './fixtures.js'
import { sharedRedisUrl } from './redis.js'

export const testJwtSecret = 'test-secret-test-secret-test-secret-0123456789'
export type Backend = 'postgres' | 'pglite'
/** The two database backends production and the embedded path use; key tests run on both (`describe.each`). */
export const backends: Array<{ name: Backend }> = [{ name: 'postgres' }, { name: 'pglite' }]

export interface TestAppOptions {
  backend?: Backend
  /** true: the machine's shared Redis; a URL: that Redis; absent: REDIS_DISABLED. */
  redis?: boolean | string
  /** A start date makes the clock manual (`ctx.clock.set/advance`); absent, the system clock. */
  clock?: Date
  worker?: boolean
  sweeper?: boolean
  /** Extra environment, e.g. CACHE_TTL_SECONDS. */
  env?: Record<string, string>
  /** Listen on a free port of 127.0.0.1 (`ctx.url`), for real HTTP and Socket.io clients. */
  listen?: boolean
  poolMax?: number
}

type ManualClock = ReturnType<typeof manualClock>

export interface TestContext {
  app: App
  db: Db
  database: Database
  /** The manual clock when `clock` was given (its `set`/`advance` throw otherwise). */
  clock: ManualClock
  /** This file's REDIS_KEY_PREFIX: its keys, channels and queues meet no other test file's. */
  prefix: string
  /** http://127.0.0.1:<port> when `listen`. */
  url: string
  /** Every event the app emitted, in order (the real emitter, observed). `emitted.length = 0` to reset. */
  emitted: ChangeEvent[]
  org (opts?: Parameters<typeof createOrgFixture>[1]): Promise<OrgFixture>
  token (orgs: Record<string, Role>, extra?: { admin?: boolean, sub?: string, ttlMs?: number }): string
  bearer (orgs: Record<string, Role>, extra?: { admin?: boolean, sub?: string }): { authorization: string }
  /** POST /api/ingest/readings with the fixture's API key. */
  ingest (fx: OrgFixture, readings: Array<{ deviceEui: string, temperature: number, recordedAt: string | Date, humidity?: number, battery?: number }>): Promise<{ statusCode: number, json: () => any }>
  /** Another app on the same database, Redis and prefix (another instance of the deployment), closed with this one. */
  peer (opts?: Pick<TestAppOptions, 'worker' | 'sweeper' | 'env' | 'listen' | 'redis'>): Promise<{ app: App, url: string }>
}

/** The environment of a test app: quiet, limits out of the way, Redis off unless asked for. */
export function testEnv (opts: { redis?: boolean | string, prefix: string, env?: Record<string, string> }): Record<string, string> {
  const redisUrl = opts.redis === true ? sharedRedisUrl : typeof opts.redis === 'string' ? opts.redis : null
  return {
    NODE_ENV: 'test',
    JWT_SECRET: testJwtSecret,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    DATA_DIR: '.coldboard-test',
    REDIS_KEY_PREFIX: opts.prefix,
    RATE_LIMIT_MAX: '100000',
    AUTH_FAILURE_LIMIT: '100000',
    // Generous for a loaded CI machine; the fault tests set their own short timeout.
    REDIS_COMMAND_TIMEOUT_MS: '1000',
    ...(redisUrl ? { REDIS_URL: redisUrl } : { REDIS_DISABLED: 'true' }),
    ...opts.env
  }
}

export async function buildTestApp (o: { database: Database, clock?: Clock, prefix?: string, redis?: boolean | string, env?: Record<string, string>, worker?: boolean, sweeper?: boolean }): Promise<App> {
  const env = testEnv({ redis: o.redis, prefix: o.prefix ?? newPrefix(), env: o.env })
  return buildApp({ config: loadConfig(env as Partial<Record<keyof Env, string>>), database: o.database, clock: o.clock, worker: o.worker ?? false, sweeper: o.sweeper ?? false })
}

/**
 * A worker instance as `serve` runs it through a Redis outage or failover: with the sweep timer, whose watchdog
 * replaces a BullMQ worker left stuck after the outage (taskforcesh/bullmq#4138) once jobs wait past
 * QUEUE_STALL_SECONDS (5 s here, swept every second). OFFLINE_AFTER_MINUTES 120 keeps the tests' back-dated
 * readings from being swept offline meanwhile. Spread into buildTestApp's options, with the test's own env.
 */
export function servedWorker (env: Record<string, string>): { env: Record<string, string>, worker: true, sweeper: true } {
  return { env: { OFFLINE_AFTER_MINUTES: '120', ...env, QUEUE_STALL_SECONDS: '5', SWEEP_INTERVAL_SECONDS: '1' }, worker: true, sweeper: true }
}

export const newPrefix = () => `cbt:${randomBytes(4).toString('hex')}:`

/**
 * One app per describe block, built in beforeAll and closed (database dropped, peers closed) in afterAll,
 * in the spirit of fastify/demo's `build(t)`: a database of its own per backend, a Redis prefix of its own, a
 * manual clock when asked. Its properties are read inside tests and hooks.
 */
export function useTestApp (opts: TestAppOptions = {}): TestContext {
  const prefix = newPrefix()
  const closers: Array<() => Promise<void>> = []
  let state: { app: App, database: Database & { drop?: () => Promise<void> }, clock: ManualClock | null, url: string } | null = null
  const emitted: ChangeEvent[] = []
  const need = () => {
    if (!state) throw new Error('useTestApp: the app is built in beforeAll; read it inside tests')
    return state
  }

  function observe (app: App): void {
    const emit = app.realtime.emit
    app.realtime.emit = (event) => { emitted.push(event); emit(event) }
  }

  beforeAll(async () => {
    const database: Database & { drop?: () => Promise<void> } = opts.backend === 'pglite' ? await createPgliteTestDatabase() : await createTestDatabase({ poolMax: opts.poolMax })
    const clock = opts.clock ? manualClock(opts.clock) : null
    try {
      const app = await buildTestApp({ database, clock: clock ?? systemClock, prefix, redis: opts.redis, env: opts.env, worker: opts.worker, sweeper: opts.sweeper })
      observe(app)
      const url = opts.listen ? await app.listen({ port: 0, host: '127.0.0.1' }) : ''
      await app.ready()
      if (app.cache.isEnabled()) await waitFor(() => app.cache.isAvailable(), 10_000, 'the cache connection')
      state = { app, database, clock, url }
    } catch (err) {
      if (database.drop) await database.drop()
      else await database.close()
      throw err
    }
  })
  afterAll(async () => {
    for (const close of closers.reverse()) await close()
    if (!state) return
    await state.app.close()
    if (state.database.drop) await state.database.drop()
    else await state.database.close()
    state = null
  })

  const ctx: TestContext = {
    get app () { return need().app },
    get db () { return need().app.db },
    get database () { return need().database },
    get clock () {
      const c = need().clock
      if (!c) throw new Error('useTestApp: pass `clock` for a manual clock')
      return c
    },
    prefix,
    get url () { return need().url },
    emitted,
    org: (o) => createOrgFixture(need().app.db, o),
    token: (orgs, extra = {}) => need().app.tokens.sign({ sub: extra.sub ?? 'test-user', orgs, admin: extra.admin }, extra.ttlMs),
    bearer: (orgs, extra) => ({ authorization: `Bearer ${ctx.token(orgs, extra)}` }),
    async ingest (fx, readings) {
      const res = await need().app.inject({
        method: 'POST',
        url: '/api/ingest/readings',
        headers: { 'x-api-key': fx.apiKey },
        payload: { readings: readings.map((r) => ({ ...r, recordedAt: r.recordedAt instanceof Date ? r.recordedAt.toISOString() : r.recordedAt })) }
      })
      return { statusCode: res.statusCode, json: () => res.json() }
    },
    async peer (p = {}) {
      const s = need()
      const app = await buildTestApp({ database: s.database, clock: s.clock ?? systemClock, prefix, redis: p.redis ?? opts.redis, env: { ...opts.env, ...p.env }, worker: p.worker, sweeper: p.sweeper })
      closers.push(() => app.close())
      const url = p.listen ? await app.listen({ port: 0, host: '127.0.0.1' }) : ''
      await app.ready()
      if (app.cache.isEnabled()) await waitFor(() => app.cache.isAvailable(), 10_000, 'the cache connection')
      return { app, url }
    }
  }
  return ctx
}
