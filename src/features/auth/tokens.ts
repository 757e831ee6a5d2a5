import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { createSigner, createVerifier } from 'fast-jwt'
import { UnauthorizedError } from '../../errors.js'

export type Role = 'viewer' | 'manager' | 'owner'
export const roles: readonly Role[] = ['viewer', 'manager', 'owner']
const rank: Record<Role, number> = { viewer: 0, manager: 1, owner: 2 }

export interface Principal {
  sub: string
  /** Organization ids (lower-case) → role. */
  orgs: Record<string, Role>
  admin: boolean
  /** When the token expires (ms since the epoch): a Socket.io connection is closed then. */
  expiresAt: number
}

export function hasRole (p: Principal, orgId: string, min: Role): boolean {
  const role = p.orgs[orgId.toLowerCase()]
  return role !== undefined && rank[role] >= rank[min]
}

export interface TokenClaims { sub: string, orgs: Record<string, Role>, admin?: boolean }

/** Clock skew tolerated between the signer and this server when a token's lifetime is checked. */
const SKEW_MS = 60_000
export const DEFAULT_TOKEN_TTL_MS = 12 * 3600_000

/** Verified tokens remembered per process (a dashboard sends the same token with every request). */
export const VERIFIED_TOKENS_CACHED = 10_000

/**
 * HS256 JWTs: sign for the CLI, verify for HTTP and the Socket.io handshake. Every token must expire (`exp`), and
 * none may live longer than TOKEN_MAX_TTL: a leaked token stops working at the latest then.
 *
 * A verified token's principal is remembered, keyed by the token text, until the token expires: the same bytes
 * always verify to the same principal, so a repeat costs one Map lookup instead of an HMAC and a SHA-256 (fast-jwt's
 * own cache hashes every token it looks up). Bounded: the oldest entries go first.
 */
export function createTokenService (secret: string, opts: { maxTtlMs: number }) {
  const verifier = createVerifier({ key: secret, algorithms: ['HS256'], requiredClaims: ['exp'] })
  const verified = new Map<string, Principal>()
  function remember (token: string, p: Principal): Principal {
    if (verified.size >= VERIFIED_TOKENS_CACHED) verified.delete(verified.keys().next().value!)
    verified.set(token, p)
    return p
  }
  return {
    maxTtlMs: opts.maxTtlMs,
    sign (claims: TokenClaims, ttlMs = Math.min(DEFAULT_TOKEN_TTL_MS, opts.maxTtlMs)): string {
      if (!(ttlMs > 0) || ttlMs > opts.maxTtlMs) throw new Error(`token lifetime must be between 1 ms and TOKEN_MAX_TTL (${opts.maxTtlMs} ms)`)
      return createSigner({ key: secret, algorithm: 'HS256', expiresIn: ttlMs })({ ...claims })
    },
    verify (token: string): Principal {
      const known = verified.get(token)
      if (known !== undefined) {
        if (known.expiresAt > Date.now()) return known
        verified.delete(token)
      }
      let payload: Record<string, unknown>
      try {
        payload = verifier(token)
      } catch (err) {
        throw new UnauthorizedError(`invalid token: ${(err as Error).message}`)
      }
      const orgs = payload.orgs
      if (typeof payload.sub !== 'string' || typeof orgs !== 'object' || orgs === null) {
        throw new UnauthorizedError('invalid token: missing sub or orgs claim')
      }
      const expiresAt = Number(payload.exp) * 1000
      if (expiresAt - Date.now() > opts.maxTtlMs + SKEW_MS) throw new UnauthorizedError('invalid token: it lives longer than TOKEN_MAX_TTL')
      const clean: Record<string, Role> = {}
      for (const [org, role] of Object.entries(orgs)) {
        if (roles.includes(role as Role)) clean[org.toLowerCase()] = role as Role
      }
      return remember(token, Object.freeze({ sub: payload.sub, orgs: Object.freeze(clean), admin: payload.admin === true, expiresAt }))
    }
  }
}
export type TokenService = ReturnType<typeof createTokenService>

/**
 * JWT_SECRET when set; otherwise a random secret generated once and kept in the data folder,
 * so that `coldboard token` and the server agree. `onGenerated` is called the one time it is created.
 */
export function resolveJwtSecret (configured: string | undefined, dataDir: string, onGenerated?: (file: string) => void): string {
  if (configured) return configured
  const file = path.resolve(dataDir, 'jwt-secret')
  if (existsSync(file)) return readFileSync(file, 'utf8').trim()
  mkdirSync(path.dirname(file), { recursive: true })
  const secret = randomBytes(48).toString('base64url')
  writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' })
  onGenerated?.(file)
  return secret
}

export function generateApiKey (): { key: string, hash: string } {
  const key = `cb_${randomBytes(32).toString('base64url')}`
  return { key, hash: hashApiKey(key) }
}

/** API keys carry 256 random bits, so a fast hash is enough; only the hash is stored. */
export function hashApiKey (key: string): string {
  return createHash('sha256').update(key).digest('hex')
}
