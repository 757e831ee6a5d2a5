import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../src/config.js'
import { resolveJwtSecret } from '../src/features/auth/tokens.js'

describe('configuration', () => {
  it('has the defaults of .env.example', () => {
    const c = loadConfig({})
    expect(c).toMatchObject({ PORT: 3000, CACHE_TTL_SECONDS: 60, OFFLINE_AFTER_MINUTES: 15, CONFIRM_MINUTES: 10, RATE_LIMIT_MAX: 600, trustProxy: false, corsOrigins: false })
    expect(c).toMatchObject({ REDIS_KEY_PREFIX: 'coldboard:', queuePrefix: 'coldboard:bull' })
    expect(c.QUEUE_PREFIX).toBeUndefined()
    expect(c.redis).toEqual({ url: 'redis://127.0.0.1:6379' })
    expect(loadConfig({ REDIS_HOST: 'cache', REDIS_PORT: '6380' }).redis).toEqual({ url: 'redis://cache:6380' })
    expect(loadConfig({ REDIS_URL: 'redis://r:1', REDIS_HOST: 'ignored' }).redis).toEqual({ url: 'redis://r:1' })
    expect(loadConfig({ REDIS_DISABLED: 'true' }).redis).toBeNull()
  })

  it('derives the queue prefix from REDIS_KEY_PREFIX unless QUEUE_PREFIX is set', () => {
    expect(loadConfig({ REDIS_KEY_PREFIX: 'tenant-a:' }).queuePrefix).toBe('tenant-a:bull')
    expect(loadConfig({ REDIS_KEY_PREFIX: 'tenant-a:', QUEUE_PREFIX: 'jobs' }).queuePrefix).toBe('jobs')
    expect(() => loadConfig({ REDIS_KEY_PREFIX: 'has space:' })).toThrow(/REDIS_KEY_PREFIX/)
  })

  it('names every wrong variable in one error', () => {
    let err: unknown
    try {
      loadConfig({ PORT: 'abc', CACHE_TTL_SECONDS: '0', DATABASE_URL: 'not a url', LOG_LEVEL: 'loud', JWT_SECRET: 'short' })
    } catch (e) { err = e }
    expect(err).toBeInstanceOf(ConfigError)
    const problems = (err as ConfigError).problems
    for (const name of ['PORT', 'CACHE_TTL_SECONDS', 'DATABASE_URL', 'LOG_LEVEL', 'JWT_SECRET']) {
      expect(problems.some((p) => p.startsWith(`${name}:`)), name).toBe(true)
    }
    expect(problems).toHaveLength(5)
  })

  it('reads the retention and report limits, and keeps rollups at least as long as readings', () => {
    expect(loadConfig({})).toMatchObject({ READINGS_RETENTION_DAYS: 400, ROLLUP_RETENTION_DAYS: 1100, REPORT_STATEMENT_TIMEOUT_MS: 15_000, REPORT_CONCURRENCY_PER_ORG: 2 })
    expect(loadConfig({ READINGS_RETENTION_DAYS: '30', ROLLUP_RETENTION_DAYS: '30' }).ROLLUP_RETENTION_DAYS).toBe(30)
    expect(() => loadConfig({ READINGS_RETENTION_DAYS: '1200' })).toThrow(/ROLLUP_RETENTION_DAYS: must be at least READINGS_RETENTION_DAYS \(1200\)/)
    expect(() => loadConfig({ REPORT_CONCURRENCY_PER_ORG: '0' })).toThrow(/REPORT_CONCURRENCY_PER_ORG/)
  })

  it('refuses production without JWT_SECRET', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET: required when NODE_ENV=production/)
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) }).NODE_ENV).toBe('production')
  })

  it('parses CORS origins and TRUST_PROXY', () => {
    expect(loadConfig({ CORS_ORIGINS: 'https://a.example, https://b.example' }).corsOrigins).toEqual(['https://a.example', 'https://b.example'])
    expect(loadConfig({ CORS_ORIGINS: '*' }).corsOrigins).toBe(true)
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true)
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(1)
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1'])
    expect(() => loadConfig({ TRUST_PROXY: 'everyone' })).toThrow(/TRUST_PROXY/)
  })

  it('generates a JWT secret once outside production and keeps it in the data folder', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cb-secret-'))
    try {
      const generated: string[] = []
      const a = resolveJwtSecret(undefined, dir, (f) => generated.push(f))
      const b = resolveJwtSecret(undefined, dir, (f) => generated.push(f))
      expect(a).toBe(b)
      expect(a.length).toBeGreaterThanOrEqual(32)
      expect(generated).toEqual([path.join(dir, 'jwt-secret')])
      expect(statSync(generated[0]!).mode & 0o777).toBe(0o600)
      expect(resolveJwtSecret('configured-secret-configured-secret', dir)).toBe('configured-secret-configured-secret')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('the CLI exits non-zero with the reason on stderr', () => {
    const res = spawnSync(process.execPath, ['bin/coldboard.js', 'serve'], { env: { ...process.env, PORT: 'abc', JWT_SECRET: 'x'.repeat(40) }, encoding: 'utf8', timeout: 30_000 })
    expect(res.status).toBe(1)
    expect(res.stderr).toMatch(/^coldboard: invalid configuration:\n\s+- PORT: /)
    expect(res.stdout).toBe('')
    const unknown = spawnSync(process.execPath, ['bin/coldboard.js', 'frobnicate'], { encoding: 'utf8', timeout: 30_000 })
    expect(unknown.status).toBe(1)
    expect(unknown.stderr.trim()).toBe('coldboard: unknown command "frobnicate" (see coldboard --help)')
  })

  it("refuses .env.example's sample JWT secret in production, and an unusable TOKEN_MAX_TTL", () => {
    const sample = /^# JWT_SECRET=(.+)$/m.exec(readFileSync('.env.example', 'utf8'))![1]!
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: sample })).toThrow(/JWT_SECRET: the sample value/)
    expect(loadConfig({ NODE_ENV: 'development', JWT_SECRET: sample }).JWT_SECRET).toBe(sample)
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'y'.repeat(40) }).tokenMaxTtlMs).toBe(30 * 86_400_000)
    expect(() => loadConfig({ TOKEN_MAX_TTL: 'forever' })).toThrow(/TOKEN_MAX_TTL/)
    expect(() => loadConfig({ TOKEN_MAX_TTL: '10s' })).toThrow(/TOKEN_MAX_TTL: at least a minute/)
  })
})
