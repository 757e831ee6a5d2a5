import { randomBytes } from 'node:crypto'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig, type Env } from '../../src/config.js'
import type { Database } from '../../src/infra/postgres.js'
import type { Clock } from '../../src/lib/clock.js'
import type { Role } from '../../src/features/auth/tokens.js'

export const testJwtSecret = 'test-secret-test-secret-test-secret-0123456789'

export interface TestAppOptions {
  database: Database
  env?: Record<string, string>
  clock?: Clock
  worker?: boolean
  sweeper?: boolean
}

/**
 * An app on the given database. Redis is off unless `env.REDIS_URL` is given; each app gets its own
 * BullMQ prefix so test files sharing one Redis never see each other's jobs.
 */
export async function buildTestApp (opts: TestAppOptions): Promise<App> {
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    JWT_SECRET: testJwtSecret,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    DATA_DIR: '.coldboard-test',
    QUEUE_PREFIX: `cbtest${randomBytes(4).toString('hex')}`,
    RATE_LIMIT_MAX: '100000',
    AUTH_FAILURE_LIMIT: '100000',
    // Generous for a loaded CI machine; the fault tests set their own short timeout.
    REDIS_COMMAND_TIMEOUT_MS: '1000',
    ...(opts.env?.REDIS_URL ? {} : { REDIS_DISABLED: 'true' }),
    ...opts.env
  }
  const config = loadConfig(env as Partial<Record<keyof Env, string>>)
  return buildApp({ config, database: opts.database, clock: opts.clock, worker: opts.worker ?? false, sweeper: opts.sweeper ?? false })
}

export function bearer (app: App, orgs: Record<string, Role>, extra: { admin?: boolean, sub?: string } = {}): { authorization: string } {
  return { authorization: `Bearer ${app.tokens.sign({ sub: extra.sub ?? 'test-user', orgs, admin: extra.admin })}` }
}
