import type { TSchema } from 'typebox'
import { eventUnitId, type ChangeEvent, type EventName } from '../changes/events.js'
import type { DashboardQueryService } from './queries.js'
import { AlertCountQuery, AlertCounts, DashboardStats, DeviceCounts, TemperatureTrend, UnitCounts } from './schemas.js'
import type { OrgCounts } from './types.js'

const alertEvents = ['alertCreated', 'alertAcknowledged', 'alertResolved', 'alertEscalated'] as const satisfies readonly EventName[]
const allEvents = ['unitUpdate', ...alertEvents, 'deviceStatusChange'] as const satisfies readonly EventName[]

/** Whose entry it is: the organization's, one unit's, or either (`?unitId=`). */
export type Scope = 'org' | 'unit' | 'org-or-unit'

/** What a loader may ask the read-through for: the overview's compliance figure, cached on its own. */
export interface LoadContext {
  /** The figure; undefined: the overview's statement computes it, and hands it to `computed`. */
  compliance (orgId: string): Promise<number | undefined>
  computed? (orgId: string, value: number): void
}

export interface QueryTypeDefinition {
  /** Key segment: `<prefix>dashboard:<segment>:org:{<orgId>}[:unit:<unitId>]` (keys.ts). */
  segment: string
  scope: Scope
  /** The events that change this entry (for a per-unit entry: the events of that unit). */
  invalidatedBy: readonly EventName[]
  /** Reads it from PostgreSQL; null when the unit does not exist in the organization (a 404, never cached). */
  load (q: DashboardQueryService, e: { orgId: string, unitId?: string }, ctx: LoadContext): Promise<unknown>
  /**
   * The organization-level entry as a part of the overview's counts (the same SQL, queries.ts): reloads of several
   * such entries of one organization asked for together run one statement (read-through.ts).
   */
  fromCounts?: (c: OrgCounts) => unknown
  /** Its HTTP route: the response schema is the contract, the cache never changes a response's shape. */
  route: { url: string, operationId: string, summary: string, response: TSchema, querystring?: TSchema }
}

/**
 * Every cached dashboard read, one entry each: key, loader, response schema, invalidating events, route.
 * Adding a query type is an entry here and its SQL in queries.ts; the routes, the keys, the invalidations and
 * the metric series follow from it.
 */
export const queryTypes = {
  stats: {
    segment: 'stats',
    scope: 'org',
    invalidatedBy: allEvents,
    load: async (q, e, ctx) => {
      const given = await ctx.compliance(e.orgId)
      const stats = await q.stats(e.orgId, { compliancePercentage: given })
      if (given === undefined) ctx.computed?.(e.orgId, stats.compliancePercentage)
      return stats
    },
    route: { url: '/api/orgs/:orgId/dashboard', operationId: 'getDashboard', summary: 'Organization overview', response: DashboardStats }
  },
  units_status: {
    segment: 'units:status',
    scope: 'org',
    invalidatedBy: ['unitUpdate'],
    load: (q, e) => q.unitsStatus(e.orgId),
    fromCounts: (c) => c.unitCounts,
    route: { url: '/api/orgs/:orgId/dashboard/units/status', operationId: 'getUnitStatusCounts', summary: 'Active units by state', response: UnitCounts }
  },
  alerts_count: {
    segment: 'alerts:count',
    scope: 'org-or-unit',
    invalidatedBy: alertEvents,
    load: (q, e) => q.alertsCount(e.orgId, e.unitId),
    fromCounts: (c) => c.alertCounts,
    route: { url: '/api/orgs/:orgId/dashboard/alerts/count', operationId: 'getAlertCounts', summary: 'Open alert counts, for the organization or one unit', response: AlertCounts, querystring: AlertCountQuery }
  },
  devices_online: {
    segment: 'devices:online',
    scope: 'org',
    invalidatedBy: ['deviceStatusChange'],
    load: (q, e) => q.devicesOnline(e.orgId),
    fromCounts: (c) => c.deviceCounts,
    route: { url: '/api/orgs/:orgId/dashboard/devices/online', operationId: 'getDeviceCounts', summary: 'Devices online and offline', response: DeviceCounts }
  },
  temperature_trends: {
    segment: 'temperature:trends',
    scope: 'unit',
    invalidatedBy: ['unitUpdate'],
    load: (q, e) => q.temperatureTrends(e.orgId, e.unitId!),
    route: { url: '/api/orgs/:orgId/units/:unitId/temperature-trends', operationId: 'getTemperatureTrend', summary: 'Last 24 h of a unit in 5-minute buckets', response: TemperatureTrend }
  }
} as const satisfies Record<string, QueryTypeDefinition>

export type QueryType = keyof typeof queryTypes
/** The `query_type` label values, in a stable order. */
export const queryTypeNames = Object.keys(queryTypes) as QueryType[]

/** One cached entry: its query type and scope. */
export interface Entry { queryType: QueryType, orgId: string, unitId?: string }

/**
 * Entries of one organization that one statement can reload together (read-through.ts): its count panels (the
 * overview's counts serve them all) and its units' trends (temperatureTrendsOf). null: the entry loads alone.
 */
export type BatchFamily = 'counts' | 'trends'
export function batchFamily (e: Entry): BatchFamily | null {
  if (e.unitId === undefined) return e.queryType === 'stats' || 'fromCounts' in queryTypes[e.queryType] ? 'counts' : null
  return e.queryType === 'temperature_trends' ? 'trends' : null
}

export const hasOrgEntry = (qt: QueryType) => queryTypes[qt].scope !== 'unit'
export const hasUnitEntry = (qt: QueryType) => queryTypes[qt].scope !== 'org'

/** What an event changes: each query type it invalidates, at the organization's level and for its unit. */
export function entriesForEvent (e: ChangeEvent): Entry[] {
  const orgId = e.payload.organizationId
  const unitId = eventUnitId(e)
  const out: Entry[] = []
  for (const queryType of queryTypeNames) {
    if (!(queryTypes[queryType].invalidatedBy as readonly EventName[]).includes(e.name)) continue
    if (hasOrgEntry(queryType)) out.push({ queryType, orgId })
    if (hasUnitEntry(queryType)) out.push({ queryType, orgId, unitId })
  }
  return out
}
