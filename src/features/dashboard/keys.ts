import { queryTypes, type Entry } from './query-types.js'

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * The dashboard's key schema, behind the deployment's REDIS_KEY_PREFIX:
 * `<prefix>dashboard:<segment>:org:{<orgId>}[:unit:<unitId>]`. The organization id is the Redis Cluster hash
 * tag, so every key of one organization (entries, fences, compliance) lives in one slot and one Lua script may
 * touch them all. Ids are lower-case canonical UUIDs; a key without a valid organization id is refused.
 */
export function createDashboardKeys (prefix: string) {
  const org = (orgId: string): string => {
    if (!uuidRe.test(orgId)) throw new Error(`cache key needs a lower-case organization id, got "${orgId}"`)
    return `{${orgId}}`
  }
  return {
    entry (e: Entry): string {
      const def = queryTypes[e.queryType]
      if (def.scope === 'unit' && e.unitId === undefined) throw new Error(`${e.queryType} keys need a unit id`)
      if (def.scope === 'org' && e.unitId !== undefined) throw new Error(`${e.queryType} keys have no unit`)
      if (e.unitId !== undefined && !uuidRe.test(e.unitId)) throw new Error(`bad unit id "${e.unitId}"`)
      const base = `${prefix}dashboard:${def.segment}:org:${org(e.orgId)}`
      return e.unitId === undefined ? base : `${base}:unit:${e.unitId}`
    },
    /** The organization's fence hash: one token per entry scope, and `*` for all of them (docs/caching.md). */
    fence: (orgId: string) => `${prefix}dashboard:gen:org:${org(orgId)}`,
    /**
     * The overview's compliance figure, cached on its own: it may be up to CACHE_TTL_SECONDS old, and it is the
     * costly part of the overview, so no event invalidates it (an organization-wide invalidation does).
     */
    compliance: (orgId: string) => `${prefix}dashboard:stats:compliance:org:${org(orgId)}`,
    /** Held (SET NX PX) by the one instance recomputing the compliance figure ahead of its expiry. */
    complianceClaim: (orgId: string) => `${prefix}dashboard:stats:compliance:claim:org:${org(orgId)}`,
    /** Every dashboard key of every organization (administrative purges; events never scan). */
    pattern: `${prefix}dashboard:*`,
    isFence: (key: string) => key.startsWith(`${prefix}dashboard:gen:`)
  }
}
export type DashboardKeys = ReturnType<typeof createDashboardKeys>

/** The field of the fence hash that fences an entry. */
export function fenceField (e: Entry): string {
  return e.unitId === undefined ? e.queryType : `${e.queryType}:${e.unitId}`
}
