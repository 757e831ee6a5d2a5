import { and, asc, eq, isNull, sql } from 'drizzle-orm'
import { apiKeys, organizations } from '../../db/schema.js'
import { NotFoundError } from '../../errors.js'
import type { Db } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'
import { fromMicros, isMicros, isUuid, microsOf, readCursor, toPage, type Page } from '../../http/paging.js'
import { generateApiKey, hashApiKey } from './tokens.js'

export interface ApiKeyInfo { id: string, organizationId: string, name: string, createdAt: Date, revokedAt: Date | null }
const info = { id: apiKeys.id, organizationId: apiKeys.organizationId, name: apiKeys.name, createdAt: apiKeys.createdAt, revokedAt: apiKeys.revokedAt }

/**
 * Device API keys: 256 random bits shown once at creation, stored as a SHA-256 hash, looked up on every request
 * (so a revocation holds on the next request, on every instance), revocable by the organization's owners.
 */
export function createApiKeyService (deps: { db: Db, clock: Clock }) {
  const { db, clock } = deps
  async function assertOrganization (orgId: string): Promise<void> {
    const [row] = await db.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, orgId))
    if (!row) throw new NotFoundError('organization')
  }
  return {
    /** The key's id and organization when it exists and is not revoked. */
    async authenticate (key: string): Promise<{ id: string, organizationId: string } | null> {
      const [row] = await db.select({ id: apiKeys.id, organizationId: apiKeys.organizationId })
        .from(apiKeys).where(and(eq(apiKeys.hash, hashApiKey(key)), isNull(apiKeys.revokedAt))).limit(1)
      return row ?? null
    },

    /** A new key: the secret is returned this once and never stored. */
    async create (orgId: string, name: string): Promise<{ key: string, apiKey: ApiKeyInfo }> {
      await assertOrganization(orgId)
      const { key, hash } = generateApiKey()
      const [row] = await db.insert(apiKeys).values({ organizationId: orgId, name, hash, createdAt: clock.now() }).returning(info)
      return { key, apiKey: row! }
    },

    /** Oldest first, revoked ones included (with their revocation time). */
    async list (orgId: string, page: { limit: number, cursor?: string }): Promise<Page<ApiKeyInfo>> {
      await assertOrganization(orgId)
      const after = readCursor(page.cursor, 'api-keys', [isMicros, isUuid])
      const rows = await db.select({ ...info, at: microsOf(apiKeys.createdAt) }).from(apiKeys)
        .where(and(
          eq(apiKeys.organizationId, orgId),
          after ? sql`(${apiKeys.createdAt}, ${apiKeys.id}) > (${fromMicros(after[0] as string)}, ${after[1] as string}::uuid)` : undefined
        ))
        .orderBy(asc(apiKeys.createdAt), asc(apiKeys.id))
        .limit(page.limit + 1)
      const result = toPage(rows, page.limit, 'api-keys', (r) => [r.at, r.id])
      return { items: result.items.map(({ at: _at, ...k }) => k), next: result.next }
    },

    /** Revokes a key of the organization (idempotent: a revoked key keeps its first revocation time). */
    async revoke (orgId: string, keyId: string): Promise<ApiKeyInfo> {
      const [revoked] = await db.update(apiKeys).set({ revokedAt: clock.now() })
        .where(and(eq(apiKeys.id, keyId), eq(apiKeys.organizationId, orgId), isNull(apiKeys.revokedAt))).returning(info)
      if (revoked) return revoked
      const [existing] = await db.select(info).from(apiKeys).where(and(eq(apiKeys.id, keyId), eq(apiKeys.organizationId, orgId)))
      if (!existing) throw new NotFoundError('API key')
      return existing
    }
  }
}
export type ApiKeyService = ReturnType<typeof createApiKeyService>
