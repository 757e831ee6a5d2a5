// Signing in: a pasted JWT (or one handed over in the URL fragment) kept in sessionStorage, so it
// dies with the tab. The page only decodes the token to pick an organization and a role; the API
// and the Socket.io handshake are what verify it.

export type Role = 'viewer' | 'manager' | 'owner'

export interface Claims {
  sub: string
  orgs: Record<string, Role>
  admin: boolean
  /** Expiry, seconds since the epoch. */
  exp?: number
}

export interface Session {
  token: string
  claims: Claims
  orgId: string
}

const TOKEN_KEY = 'coldboard.token'
const ORG_KEY = 'coldboard.org'
const roles: readonly string[] = ['viewer', 'manager', 'owner']

/** The claims of a JWT, without verifying it; throws an Error whose message is fit for the user. */
export function decodeToken (token: string): Claims {
  const part = token.split('.')[1]
  if (token.split('.').length !== 3 || !part) throw new Error('This is not a JWT (expected three dot-separated parts).')
  let payload: unknown
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=')
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))
    payload = JSON.parse(new TextDecoder().decode(bytes))
  } catch {
    throw new Error('The token payload cannot be decoded.')
  }
  const p = payload as { sub?: unknown, orgs?: unknown, admin?: unknown, exp?: unknown }
  const orgs: Record<string, Role> = {}
  if (typeof p.orgs === 'object' && p.orgs !== null) {
    for (const [id, role] of Object.entries(p.orgs)) if (roles.includes(role as string)) orgs[id] = role as Role
  }
  if (Object.keys(orgs).length === 0) throw new Error('The token grants no organization (empty "orgs" claim).')
  return {
    sub: typeof p.sub === 'string' ? p.sub : '',
    orgs,
    admin: p.admin === true,
    ...(typeof p.exp === 'number' ? { exp: p.exp } : {})
  }
}

export function isExpired (claims: Claims, nowMs = Date.now()): boolean {
  return claims.exp !== undefined && claims.exp * 1000 <= nowMs
}

/** A session for `token`, on `orgId` when the token grants it, else on the token's first organization. */
export function signIn (token: string, orgId?: string | null): Session {
  const trimmed = token.trim()
  const claims = decodeToken(trimmed)
  if (isExpired(claims)) throw new Error('This token has expired; create a new one with `coldboard token`.')
  const org = orgId && claims.orgs[orgId] ? orgId : Object.keys(claims.orgs)[0]!
  sessionStorage.setItem(TOKEN_KEY, trimmed)
  sessionStorage.setItem(ORG_KEY, org)
  return { token: trimmed, claims, orgId: org }
}

export function switchOrg (session: Session, orgId: string): Session {
  sessionStorage.setItem(ORG_KEY, orgId)
  return { ...session, orgId }
}

export function signOut (): void {
  sessionStorage.removeItem(TOKEN_KEY)
  sessionStorage.removeItem(ORG_KEY)
}

/**
 * The session to start with: `#token=…&org=…` in the URL wins (and is removed from the address bar
 * and history at once, so the token is not left in a bookmark or a screenshot), then sessionStorage.
 * Throws when a token is present but unusable.
 */
export function restoreSession (): Session | null {
  const fragment = new URLSearchParams(location.hash.slice(1))
  const handed = fragment.get('token')
  if (handed) {
    history.replaceState(null, '', location.pathname + location.search)
    return signIn(handed, fragment.get('org'))
  }
  const stored = sessionStorage.getItem(TOKEN_KEY)
  if (!stored) return null
  try {
    return signIn(stored, sessionStorage.getItem(ORG_KEY))
  } catch (err) {
    signOut()
    throw err
  }
}

export const canWrite = (s: Session): boolean => s.claims.orgs[s.orgId] === 'manager' || s.claims.orgs[s.orgId] === 'owner'
