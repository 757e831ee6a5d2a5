import type { QueryType } from '../../infra/metrics.js'
import type { ChangeEvent } from '../events/types.js'

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Key segment per query type (SPEC §5): `dashboard:{segment}:org:{orgId}[:unit:{unitId}]`. */
const segments: Record<QueryType, string> = {
  units_status: 'units:status',
  alerts_count: 'alerts:count',
  devices_online: 'devices:online',
  temperature_trends: 'temperature:trends',
  stats: 'stats'
}
const perUnitOnly: ReadonlySet<QueryType> = new Set(['temperature_trends'])

/** One cached entry: its query type and scope. */
export interface Entry { queryType: QueryType, orgId: string, unitId?: string }

/** The one key builder (D12). Refuses a key without a valid organization id. */
export function dashboardKey (e: Entry): string {
  if (!e.orgId || !uuidRe.test(e.orgId)) throw new Error(`cache key needs an organization id, got "${e.orgId}"`)
  if (perUnitOnly.has(e.queryType) && !e.unitId) throw new Error(`${e.queryType} keys need a unit id`)
  if (e.unitId !== undefined && !uuidRe.test(e.unitId)) throw new Error(`bad unit id "${e.unitId}"`)
  const base = `dashboard:${segments[e.queryType]}:org:${e.orgId.toLowerCase()}`
  return e.unitId ? `${base}:unit:${e.unitId.toLowerCase()}` : base
}

/** The organization's generation hash: one fence token per entry scope (see docs/caching.md). */
export function generationKey (orgId: string): string {
  if (!uuidRe.test(orgId)) throw new Error(`cache key needs an organization id, got "${orgId}"`)
  return `dashboard:gen:org:${orgId.toLowerCase()}`
}

/** Per-organization index of the per-unit keys, so an organization-wide purge costs O(its keys), not O(keyspace). */
export function unitIndexKey (orgId: string): string {
  return `dashboard:idx:org:${orgId.toLowerCase()}`
}

/**
 * The overview's compliance figure, cached on its own: SPEC §5 lets it be up to CACHE_TTL_SECONDS old,
 * and it is the one expensive part of the overview (a scan of 24 h of readings). No event invalidates it,
 * so an event only costs the overview its cheap counts; an organization-wide invalidation drops it.
 */
export function complianceKey (orgId: string): string {
  if (!uuidRe.test(orgId)) throw new Error(`cache key needs an organization id, got "${orgId}"`)
  return `dashboard:stats:compliance:org:${orgId.toLowerCase()}`
}

/** The field of the generation hash that fences an entry. */
export function scopeField (e: Entry): string {
  return e.unitId ? `${e.queryType}:${e.unitId.toLowerCase()}` : e.queryType
}

/** Field that fences every entry of an organization (bumped by an organization-wide invalidation). */
export const ORG_WIDE_FIELD = '*'

/**
 * What each event changes (issue 4 §4). A unit's state change moves unit counts, the overview and the
 * unit's trend; alert events move the organization's and the unit's alert counts and the overview;
 * a device status change moves device counts and the overview.
 */
export function entriesForEvent (e: ChangeEvent): Entry[] {
  const orgId = e.payload.organizationId
  switch (e.name) {
    case 'unitUpdate':
      return [
        { queryType: 'units_status', orgId },
        { queryType: 'stats', orgId },
        { queryType: 'temperature_trends', orgId, unitId: e.payload.unitId }
      ]
    case 'deviceStatusChange':
      return [{ queryType: 'devices_online', orgId }, { queryType: 'stats', orgId }]
    default:
      return [
        { queryType: 'alerts_count', orgId },
        { queryType: 'alerts_count', orgId, unitId: e.payload.unitId },
        { queryType: 'stats', orgId }
      ]
  }
}

/** Every organization-level entry (used with the unit index for an organization-wide invalidation). */
export function orgLevelEntries (orgId: string): Entry[] {
  return (['units_status', 'alerts_count', 'devices_online', 'stats'] as const).map((queryType) => ({ queryType, orgId }))
}
