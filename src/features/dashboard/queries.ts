import { sql, type SQL } from 'drizzle-orm'
import type { UnitState } from '../../db/schema.js'
import { arrayLiteral, rows, type Db } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'
import { LEVELS, decompose, floorTo } from '../rollups/buckets.js'
import { EPOCH, windowPieces, type RawRange, type Scope } from '../rollups/sql.js'
import type {
  AlertCounts, DashboardQueries, DashboardStats, DeviceCounts, OrgCounts, TemperatureTrend, UnitCounts
} from './types.js'

/** The rolling window of trends and compliance: (now − 24 h, now]. */
export const DASHBOARD_WINDOW_MS = 24 * 3600_000

export interface DashboardWindow { from: string, to: string }

export function dashboardWindow (now: Date): DashboardWindow {
  return { from: new Date(now.getTime() - DASHBOARD_WINDOW_MS).toISOString(), to: now.toISOString() }
}

// Each statement is a plain SQL builder so that bench/dashboard-queries.ts can EXPLAIN exactly what runs.
// Counts are cast ::int and averages ::float8 so that both drivers hand back JS numbers, and timestamps
// travel as epoch milliseconds because pg and PGlite parse timestamptz differently.

const unitCounts = (orgId: string): SQL => sql`
  select count(*)::int as total,
    count(*) filter (where state = 'normal')::int as normal,
    count(*) filter (where state = 'too_hot')::int as too_hot,
    count(*) filter (where state = 'too_cold')::int as too_cold,
    count(*) filter (where state = 'offline')::int as offline
  from units
  where organization_id = ${orgId} and is_active`

// `status <> 'resolved'` repeats the predicate of the partial indexes so that the planner may use them.
const alertCounts = (orgId: string): SQL => sql`
  select count(*)::int as unresolved,
    count(*) filter (where status = 'acknowledged')::int as acknowledged,
    count(*) filter (where severity = 'critical')::int as critical
  from alerts
  where organization_id = ${orgId} and status <> 'resolved'`

// One unit's: no row at all when the unit is not in the organization (a 404, never a cached zero).
const unitAlertCounts = (orgId: string, unitId: string): SQL => sql`
  select count(a.id)::int as unresolved,
    count(a.id) filter (where a.status = 'acknowledged')::int as acknowledged,
    count(a.id) filter (where a.severity = 'critical')::int as critical
  from units u
  left join alerts a on a.unit_id = u.id and a.organization_id = ${orgId} and a.status <> 'resolved'
  where u.id = ${unitId} and u.organization_id = ${orgId}
  group by u.id`

const deviceCounts = (orgId: string): SQL => sql`
  select count(*)::int as total,
    count(*) filter (where status = 'online')::int as online,
    count(*) filter (where status = 'offline')::int as offline
  from devices
  where organization_id = ${orgId}`

const FIVE_MINUTES = LEVELS['5m'].ms

/**
 * The window (from, to] as rollup rows: whole 5-minute buckets from the first boundary after `from` to the last
 * one at or before `to` (whole hours of them from the hourly rollups), and the raw readings of the partial buckets
 * at both edges, so that the figures are exact at the edges and readings stamped after `to` stay out.
 */
function dashboardPieces (scope: Scope, w: DashboardWindow, levels: Array<'1h' | '5m'>): SQL {
  const from = Date.parse(w.from)
  const to = Date.parse(w.to)
  const a = floorTo(from, FIVE_MINUTES) + FIVE_MINUTES
  const b = floorTo(to, FIVE_MINUTES)
  if (a > b) return windowPieces(scope, [], [{ from, to, fromIncluded: false, toIncluded: true }])
  const raw: RawRange[] = [
    { from, to: a, fromIncluded: false, toIncluded: false },
    { from: b, to, fromIncluded: true, toIncluded: true }
  ]
  return windowPieces(scope, decompose(a, b, levels), raw)
}

// Whole buckets from the rollups (each reading judged by the thresholds of its time), the edges from raw readings.
// Readings of deactivated units are left out, as in the compliance report, so that the dashboard agrees with it:
// by their ids (a few, usually none) rather than by a join of every row with units, which cost a third of the time.
const complianceCounts = (orgId: string, w: DashboardWindow): SQL => sql`
  select coalesce(sum(p.readings), 0)::int as readings,
    coalesce(sum(p.readings - p.above - p.below), 0)::int as in_range
  from (${dashboardPieces({ orgId }, w, ['1h', '5m'])}) p
  where p.unit_id <> all (array(select id from units where organization_id = ${orgId} and not is_active))`

const compliancePercent = sql`case when cc.readings = 0 then 100 else round(100.0 * cc.in_range / cc.readings, 1) end::float8`

export const dashboardSql = {
  unitsStatus: unitCounts,
  alertsCount: alertCounts,
  unitAlertsCount: unitAlertCounts,
  devicesOnline: deviceCounts,

  /**
   * The trends of some units of the organization, one statement whatever their number: no row for a unit not in
   * the organization, one row with a null bucket for a unit without readings, else its 5-minute buckets in order.
   */
  temperatureTrends: (orgId: string, unitIds: readonly string[], w: DashboardWindow): SQL => sql`
    with b as (
      select p.unit_id, (extract(epoch from date_bin('5 minutes', p.at, ${EPOCH})) * 1000)::float8 as bucket_ms,
        round(sum(p.temp_sum) / sum(p.readings), 2)::float8 as temperature,
        sum(p.above) > 0 as too_hot,
        sum(p.below) > 0 as too_cold
      from (${dashboardPieces({ orgId, unitIds }, w, ['5m'])}) p
      group by 1, 2
    )
    select u.id as unit_id, b.bucket_ms, b.temperature, b.too_hot, b.too_cold
    from units u
    left join b on b.unit_id = u.id
    where u.id = any(${arrayLiteral(unitIds)}::uuid[]) and u.organization_id = ${orgId}
    order by u.id, b.bucket_ms`,

  /** The compliance figure alone: hourly and 5-minute rollups plus the raw readings of the two partial buckets. */
  compliance: (orgId: string, w: DashboardWindow): SQL => sql`
    select ${compliancePercent} as compliance from (${complianceCounts(orgId, w)}) cc`,

  /** Everything the dashboard header shows in one round trip; without a window, compliance is left out (null). */
  stats: (orgId: string, w: DashboardWindow | null): SQL => sql`
    with uc as (${unitCounts(orgId)}),
    ac as (${alertCounts(orgId)}),
    dc as (${deviceCounts(orgId)}),
    sc as (select count(*)::int as sites from sites where organization_id = ${orgId} and is_active)
    select uc.total as u_total, uc.normal as u_normal, uc.too_hot as u_too_hot, uc.too_cold as u_too_cold,
      uc.offline as u_offline,
      ac.unresolved as a_unresolved, ac.acknowledged as a_acknowledged, ac.critical as a_critical,
      dc.total as d_total, dc.online as d_online, dc.offline as d_offline,
      sc.sites,
      ${w === null ? sql`null::float8` : sql`(select ${compliancePercent} from (${complianceCounts(orgId, w)}) cc)`} as compliance,
      case when uc.offline > 0 then 'offline' when uc.too_hot > 0 then 'too_hot'
        when uc.too_cold > 0 then 'too_cold' else 'normal' end as worst_state
    from uc, ac, dc, sc`
}

/** DashboardQueries plus a way to keep the costly compliance scan off the hot path. */
export interface DashboardQueryService extends DashboardQueries {
  /** compliancePercentage of stats, alone. */
  compliancePercentage (orgId: string): Promise<number>
  /**
   * With `compliancePercentage` given (a cached figure, which may be up to CACHE_TTL_SECONDS old: docs/caching.md), the
   * statement skips the 24 h scan and costs about a millisecond whatever the number of readings.
   */
  stats (orgId: string, opts?: { compliancePercentage?: number }): Promise<DashboardStats>
  /**
   * The trends of several units of the organization in one statement, by unit id: a unit not in the organization
   * has none (reloads of an organization's watched trends share it: read-through.ts).
   */
  temperatureTrendsOf (orgId: string, unitIds: readonly string[]): Promise<Map<string, TemperatureTrend>>
  /** The overview's counts without its compliance figure: the units, alerts and devices panels in one statement. */
  counts (orgId: string): Promise<OrgCounts>
  /** Every unit of the organization, active or not: whose per-unit entries an organization-wide invalidation drops. */
  unitIds (orgId: string): Promise<string[]>
}

interface StatsRow {
  u_total: number
  u_normal: number
  u_too_hot: number
  u_too_cold: number
  u_offline: number
  a_unresolved: number
  a_acknowledged: number
  a_critical: number
  d_total: number
  d_online: number
  d_offline: number
  sites: number
  compliance: number | null
  worst_state: UnitState
}

interface TrendRow {
  unit_id: string
  bucket_ms: number | null
  temperature: number | null
  too_hot: boolean | null
  too_cold: boolean | null
}

// Key for key the rows of unitCounts, alertCounts and deviceCounts: an entry derived from these is the same JSON.
const countsOf = (r: StatsRow): OrgCounts => ({
  unitCounts: { total: r.u_total, normal: r.u_normal, too_hot: r.u_too_hot, too_cold: r.u_too_cold, offline: r.u_offline },
  alertCounts: { unresolved: r.a_unresolved, acknowledged: r.a_acknowledged, critical: r.a_critical },
  deviceCounts: { total: r.d_total, online: r.d_online, offline: r.d_offline }
})

/**
 * The comment every dashboard statement starts with. PostgreSQL ignores it, but pg_stat_statements keeps it in the
 * statement's text and pg_stat_activity shows it: so an operator (and the benchmark's exact count of dashboard queries,
 * bench/workload/pg-stats.ts) can tell the dashboard's reads from the write path's.
 */
export const DASHBOARD_SQL_TAG = '/* coldboard:dashboard */'
const tagged = (query: SQL): SQL => sql`${sql.raw(DASHBOARD_SQL_TAG)} ${query}`
const read = <T>(db: Db, query: SQL): Promise<T[]> => rows<T>(db, tagged(query))

async function one<T> (db: Db, query: SQL): Promise<T> {
  const [row] = await read<T>(db, query)
  // An aggregate without GROUP BY always yields a row; its absence is a driver fault, not "zero".
  if (row === undefined) throw new Error('aggregate query returned no row')
  return row
}

/** The dashboard's reads against PostgreSQL (or PGlite): every figure aggregated in SQL, one statement each. */
export function createDashboardQueries (deps: { db: Db, clock: Clock }): DashboardQueryService {
  const { db, clock } = deps

  /** By unit id as asked for (PostgreSQL answers in lower case). */
  async function trendsOf (orgId: string, unitIds: readonly string[]): Promise<Map<string, TemperatureTrend>> {
    const out = new Map<string, TemperatureTrend>()
    if (unitIds.length === 0) return out
    const asked = new Map(unitIds.map((id) => [id.toLowerCase(), id]))
    for (const r of await read<TrendRow>(db, dashboardSql.temperatureTrends(orgId, unitIds, dashboardWindow(clock.now())))) {
      const unitId = asked.get(r.unit_id) ?? r.unit_id
      let trend = out.get(unitId)
      if (!trend) out.set(unitId, trend = { unitId, points: [] })
      if (r.bucket_ms === null || r.temperature === null) continue
      trend.points.push({
        timestamp: new Date(r.bucket_ms).toISOString(),
        temperature: r.temperature,
        alarmState: r.too_hot === true ? 'too_hot' : r.too_cold === true ? 'too_cold' : 'normal'
      })
    }
    return out
  }

  return {
    async unitsStatus (orgId) {
      return one<UnitCounts>(db, dashboardSql.unitsStatus(orgId))
    },

    async alertsCount (orgId, unitId) {
      if (unitId === undefined) return one<AlertCounts>(db, dashboardSql.alertsCount(orgId))
      const [row] = await read<AlertCounts>(db, dashboardSql.unitAlertsCount(orgId, unitId))
      return row ?? null
    },

    async devicesOnline (orgId) {
      return one<DeviceCounts>(db, dashboardSql.devicesOnline(orgId))
    },

    async temperatureTrends (orgId, unitId): Promise<TemperatureTrend | null> {
      return (await trendsOf(orgId, [unitId])).get(unitId) ?? null
    },

    temperatureTrendsOf: trendsOf,

    async unitIds (orgId) {
      return (await read<{ id: string }>(db, sql`select id from units where organization_id = ${orgId}`)).map((r) => r.id)
    },

    async compliancePercentage (orgId) {
      return (await one<{ compliance: number }>(db, dashboardSql.compliance(orgId, dashboardWindow(clock.now())))).compliance
    },

    async counts (orgId) {
      return countsOf(await one<StatsRow>(db, dashboardSql.stats(orgId, null)))
    },

    async stats (orgId, opts = {}): Promise<DashboardStats> {
      const now = clock.now()
      const given = opts.compliancePercentage
      const r = await one<StatsRow>(db, dashboardSql.stats(orgId, given === undefined ? dashboardWindow(now) : null))
      return {
        organizationId: orgId,
        ...countsOf(r),
        compliancePercentage: given ?? r.compliance ?? 100,
        siteCount: r.sites,
        worstState: r.worst_state,
        lastUpdated: now.toISOString()
      }
    }
  }
}
