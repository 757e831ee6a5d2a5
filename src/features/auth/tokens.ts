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
  orgs: Record<string, Role>
  admin: boolean
}

export function hasRole (p: Principal, orgId: string, min: Role): boolean {
  const role = p.orgs[orgId]
  return role !== undefined && rank[role] >= rank[min]
}

export interface TokenClaims { sub: string, orgs: Record<string, Role>, admin?: boolean }

/** HS256 JWTs: sign for the CLI, verify for HTTP and the Socket.io handshake. */
export function createTokenService (secret: string) {
  const verifier = createVerifier({ key: secret, algorithms: ['HS256'], cache: 1000 })
  return {
    sign (claims: TokenClaims, ttlMs = 12 * 3600_000): string {
      return createSigner({ key: secret, algorithm: 'HS256', expiresIn: ttlMs })({ ...claims })
    },
    verify (token: string): Principal {
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
      const clean: Record<string, Role> = {}
      for (const [org, role] of Object.entries(orgs)) {
        if (roles.includes(role as Role)) clean[org] = role as Role
      }
      return { sub: payload.sub, orgs: clean, admin: payload.admin === true }
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

/** Parses "12h", "30m", "45s", "7d" or plain milliseconds. */
export function parseDuration (text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim())
  if (!m) throw new Error(`invalid duration "${text}" (use e.g. 30m, 12h, 7d)`)
  const n = Number(m[1])
  const unit = m[2] ?? 'ms'
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 }[unit] ?? 1
  return n * factor
}

export function generateApiKey (): { key: string, hash: string } {
  const key = `cb_${randomBytes(32).toString('base64url')}`
  return { key, hash: hashApiKey(key) }
}

/** API keys carry 256 random bits, so a fast hash is enough; only the hash is stored. */
export function hashApiKey (key: string): string {
  return createHash('sha256').update(key).digest('hex')
}
