import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { createSigner } from 'fast-jwt'
import { beforeAll, describe, expect, it } from 'vitest'
import { testJwtSecret, useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'

const root = path.resolve(import.meta.dirname, '../../..')

describe('per-principal request budget (RATE_LIMIT_MAX)', () => {
  const ctx = useTestApp({ env: { RATE_LIMIT_MAX: '5' } })
  let f: OrgFixture
  beforeAll(async () => { f = await ctx.org({ units: 1 }) })

  it('answers 429 with Retry-After to a token past its budget, on every authenticated route, and to nobody else', async () => {
    const greedy = ctx.bearer({ [f.org.id]: 'viewer' }, { sub: 'greedy' })
    const paths = [`/api/orgs/${f.org.id}/units`, `/api/orgs/${f.org.id}/dashboard`, `/api/orgs/${f.org.id}/alerts`]
    for (let i = 0; i < 5; i++) expect((await ctx.app.inject({ url: paths[i % 3]!, headers: greedy })).statusCode).toBe(200)
    for (const url of paths) {
      const res = await ctx.app.inject({ url, headers: greedy })
      expect(res.statusCode).toBe(429)
      expect(res.json()).toEqual({ error: { code: 'RATE_LIMITED', message: expect.any(String) } })
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0)
    }
    // Another user of the same organization, and a device key, have budgets of their own.
    expect((await ctx.app.inject({ url: paths[0]!, headers: ctx.bearer({ [f.org.id]: 'viewer' }, { sub: 'patient' }) })).statusCode).toBe(200)
    expect((await ctx.ingest(f, [{ deviceEui: f.devices[0]!.deviceEui, temperature: 5, recordedAt: new Date() }])).statusCode).toBe(202)
    // Public routes are never budgeted.
    for (let i = 0; i < 10; i++) expect((await ctx.app.inject({ url: '/health/live' })).statusCode).toBe(200)
  })
})

describe('failed authentications are counted per address and credential, across instances (Redis)', () => {
  const ctx = useTestApp({ redis: true, env: { AUTH_FAILURE_LIMIT: '3' } })
  let f: OrgFixture
  beforeAll(async () => { f = await ctx.org({ units: 1 }) })

  it('a credential failing on one instance is refused on another, from that address only, and valid ones never', async () => {
    const other = await ctx.peer()
    const bad = { authorization: 'Bearer not-a-token-at-all' }
    const url = `/api/orgs/${f.org.id}/units`
    const from = (app: typeof ctx.app, ip: string, headers: Record<string, string>) => app.inject({ url, headers, remoteAddress: ip })
    expect((await from(ctx.app, '10.9.0.1', bad)).statusCode).toBe(401)
    expect((await from(other.app, '10.9.0.1', bad)).statusCode).toBe(401)
    expect((await from(ctx.app, '10.9.0.1', bad)).statusCode).toBe(401)
    // The fourth failure, wherever it lands, is over the shared count.
    expect((await from(other.app, '10.9.0.1', bad)).statusCode).toBe(429)
    expect((await from(ctx.app, '10.9.0.1', bad)).statusCode).toBe(429)
    // The same bad credential from another address, and another bad credential from the same address, are not.
    expect((await from(ctx.app, '10.9.0.2', bad)).statusCode).toBe(401)
    expect((await from(ctx.app, '10.9.0.1', { authorization: 'Bearer another-bad-token' })).statusCode).toBe(401)
    // Valid credentials from the blocked address pass, on both instances.
    expect((await from(ctx.app, '10.9.0.1', ctx.bearer({ [f.org.id]: 'viewer' }))).statusCode).toBe(200)
    expect((await from(other.app, '10.9.0.1', ctx.bearer({ [f.org.id]: 'viewer' }))).statusCode).toBe(200)
  })
})

describe('token lifetimes', () => {
  const ctx = useTestApp({ env: { TOKEN_MAX_TTL: '1d' } })
  let f: OrgFixture
  beforeAll(async () => { f = await ctx.org({ units: 1 }) })
  const call = (token: string) => ctx.app.inject({ url: `/api/orgs/${f.org.id}/units`, headers: { authorization: `Bearer ${token}` } })
  const claims = () => ({ sub: 'u', orgs: { [f.org.id]: 'viewer' } })

  it('refuses a token without an expiry, and one that lives longer than TOKEN_MAX_TTL', async () => {
    const forever = createSigner({ key: testJwtSecret })(claims())
    expect((await call(forever)).statusCode).toBe(401)
    const tooLong = createSigner({ key: testJwtSecret, expiresIn: 2 * 86_400_000 })(claims())
    const res = await call(tooLong)
    expect(res.statusCode).toBe(401)
    expect(res.json().error.message).toMatch(/TOKEN_MAX_TTL/)
    expect((await call(createSigner({ key: testJwtSecret, expiresIn: 3600_000 })(claims()))).statusCode).toBe(200)
    expect(() => ctx.app.tokens.sign(claims() as never, 2 * 86_400_000)).toThrow(/TOKEN_MAX_TTL/)
  })

  it('coldboard token refuses a --ttl longer than TOKEN_MAX_TTL with a one-line reason', async () => {
    const run = promisify(execFile)
    const env = { ...process.env, JWT_SECRET: testJwtSecret, TOKEN_MAX_TTL: '30d', NODE_ENV: 'test', DATA_DIR: '.coldboard-test' }
    const refused = await run(process.execPath, [path.join(root, 'bin/coldboard.js'), 'token', '--org', f.org.id, '--ttl', '31d'], { env }).then(() => null, (e: { code: number, stderr: string }) => e)
    expect(refused?.code).toBe(1)
    expect(refused?.stderr.trim().split('\n')).toHaveLength(1)
    expect(refused?.stderr).toMatch(/TOKEN_MAX_TTL/)
    const ok = await run(process.execPath, [path.join(root, 'bin/coldboard.js'), 'token', '--org', f.org.id, '--ttl', '30d'], { env })
    expect(ok.stdout.trim().split('.')).toHaveLength(3)
  })
})
