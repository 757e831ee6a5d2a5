import { beforeAll, describe, expect, it } from 'vitest'
import { createSigner } from 'fast-jwt'
import { testJwtSecret, useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'

describe('authentication limits, security headers and CORS', () => {
  const ctx = useTestApp({ env: { AUTH_FAILURE_LIMIT: '3', CORS_ORIGINS: 'https://dash.example' } })
  let f: OrgFixture

  beforeAll(async () => {
    f = await ctx.org({ units: 1 })
  })

  const url = () => `/api/orgs/${f.org.id}/units`

  it('answers 429 to an address that keeps failing with one credential, never to valid credentials', async () => {
    const from = (ip: string, headers: Record<string, string>) => ctx.app.inject({ url: url(), headers, remoteAddress: ip })
    for (let i = 0; i < 3; i++) {
      const res = await from('10.1.1.1', { authorization: 'Bearer not-a-token' })
      expect(res.statusCode).toBe(401)
      expect(res.json().error.code).toBe('UNAUTHORIZED')
    }
    const blocked = await from('10.1.1.1', { authorization: 'Bearer not-a-token' })
    expect(blocked.statusCode).toBe(429)
    expect(blocked.json().error.code).toBe('RATE_LIMITED')
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0)
    // Valid credentials from that very address still pass: only failures are counted and refused.
    expect((await from('10.1.1.1', ctx.bearer({ [f.org.id]: 'viewer' }))).statusCode).toBe(200)
    // Failed API keys count the same way, per key: a device with a revoked key behind the same NAT as a
    // working one locks out nobody but itself.
    for (let i = 0; i < 3; i++) {
      const res = await ctx.app.inject({ method: 'POST', url: '/api/ingest/readings', headers: { 'x-api-key': 'cb_wrong' }, payload: { readings: [] }, remoteAddress: '10.3.3.3' })
      expect(res.statusCode).toBe(401)
    }
    expect((await ctx.app.inject({ method: 'POST', url: '/api/ingest/readings', headers: { 'x-api-key': 'cb_wrong' }, payload: { readings: [] }, remoteAddress: '10.3.3.3' })).statusCode).toBe(429)
    const valid = await ctx.app.inject({ method: 'POST', url: '/api/ingest/readings', headers: { 'x-api-key': f.apiKey }, payload: { readings: [] }, remoteAddress: '10.3.3.3' })
    expect(valid.statusCode).toBe(400) // authenticated; the empty batch is what is refused
  })

  it('refuses an expired token and one signed with another secret', async () => {
    // Issued an hour ago for ten minutes.
    const expired = createSigner({ key: testJwtSecret, expiresIn: 600_000, clockTimestamp: Date.now() - 3600_000 })({ sub: 'u', orgs: { [f.org.id]: 'viewer' } })
    const res = await ctx.app.inject({ url: url(), headers: { authorization: `Bearer ${expired}` }, remoteAddress: '10.4.4.4' })
    expect(res.statusCode).toBe(401)
    expect(res.json().error.message).toMatch(/expired/i)
    const foreign = createSigner({ key: 'another-secret-another-secret-another-secret' })({ sub: 'u', orgs: { [f.org.id]: 'owner' } })
    expect((await ctx.app.inject({ url: url(), headers: { authorization: `Bearer ${foreign}` }, remoteAddress: '10.4.4.5' })).statusCode).toBe(401)
  })

  it('sends the JSON security headers on API responses, errors and 404s, and helmet\'s HTML set on the page and /docs', async () => {
    const res = await ctx.app.inject({ url: url(), headers: ctx.bearer({ [f.org.id]: 'viewer' }), remoteAddress: '10.5.5.5' })
    expect(res.statusCode).toBe(200)
    for (const r of [res, await ctx.app.inject({ url: url(), remoteAddress: '10.5.5.6' }), await ctx.app.inject({ url: '/api/nowhere' }), await ctx.app.inject({ url: '/health' })]) {
      expect(r.headers['x-content-type-options']).toBe('nosniff')
      expect(r.headers['x-frame-options']).toBe('DENY')
      expect(r.headers['content-security-policy']).toBe("default-src 'none'; frame-ancestors 'none'")
      expect(r.headers['referrer-policy']).toBe('no-referrer')
      expect(r.headers['strict-transport-security']).toMatch(/max-age=/)
      expect(r.headers['x-powered-by']).toBeUndefined()
    }
    for (const page of ['/', '/docs/']) {
      const html = await ctx.app.inject({ url: page })
      expect(html.statusCode).toBe(200)
      expect(html.headers['content-type']).toMatch(/text\/html/)
      expect(html.headers['x-frame-options']).toBe('SAMEORIGIN')
      expect(html.headers['x-content-type-options']).toBe('nosniff')
      // The page loads its own scripts and styles: the API's "nothing at all" policy is not sent with it.
      expect(html.headers['content-security-policy']).toBeUndefined()
    }
  })

  it('allows exactly the CORS_ORIGINS origins', async () => {
    const preflight = (origin: string) => ctx.app.inject({
      method: 'OPTIONS',
      url: url(),
      headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' }
    })
    const allowed = await preflight('https://dash.example')
    expect(allowed.statusCode).toBe(204)
    expect(allowed.headers['access-control-allow-origin']).toBe('https://dash.example')
    const other = await preflight('https://evil.example')
    expect(other.headers['access-control-allow-origin']).toBeUndefined()
  })
})
