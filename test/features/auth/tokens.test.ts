import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { createTokenService, VERIFIED_TOKENS_CACHED } from '../../../src/features/auth/tokens.js'

describe('token verification', () => {
  const secret = 'test-secret-test-secret-test-secret-0123456789'
  const orgId = '8f0c6b8e-5d1c-4c4e-9f1e-2a7b3c4d5e6f'

  it('remembers a verified token: the same principal again, without verifying it again', () => {
    const tokens = createTokenService(secret, { maxTtlMs: 3600_000 })
    const token = tokens.sign({ sub: 'viewer', orgs: { [orgId.toUpperCase()]: 'viewer', other: 'not-a-role' as 'viewer' } })
    const first = tokens.verify(token)
    expect(first).toMatchObject({ sub: 'viewer', orgs: { [orgId]: 'viewer' }, admin: false })
    expect(tokens.verify(token)).toBe(first)
    // Nobody can change what the next request will be given.
    expect(Object.isFrozen(first) && Object.isFrozen(first.orgs)).toBe(true)
  })

  it('a remembered token stops working when it expires', async () => {
    const tokens = createTokenService(secret, { maxTtlMs: 3600_000 })
    const token = tokens.sign({ sub: 'short', orgs: {} }, 1100)
    expect(tokens.verify(token).sub).toBe('short')
    await sleep(1300)
    expect(() => tokens.verify(token)).toThrow(/expired/i)
  })

  it('refuses a token whose signature does not match, remembered or not, and stays bounded', () => {
    const tokens = createTokenService(secret, { maxTtlMs: 3600_000 })
    const other = createTokenService('another-secret-another-secret-another-secret', { maxTtlMs: 3600_000 })
    const token = tokens.sign({ sub: 'a', orgs: {} })
    tokens.verify(token)
    const forged = other.sign({ sub: 'a', orgs: {} })
    expect(() => tokens.verify(forged)).toThrow(/invalid token/)
    // More distinct tokens than are remembered: every one still verifies, the oldest are forgotten.
    const many = Array.from({ length: VERIFIED_TOKENS_CACHED + 50 }, (_, i) => tokens.sign({ sub: `u${i}`, orgs: {} }))
    for (const t of many) expect(tokens.verify(t).sub).toMatch(/^u/)
    expect(tokens.verify(many[0]!).sub).toBe('u0')
  })
})
