import { sql, type SQL } from 'drizzle-orm'
import { AppError, NotFoundError, ValidationError } from '../../errors.js'
import { rows, type Db } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'
import { LEVELS, decompose, floorTo } from '../rollups/buckets.js'
import { EPOCH, windowPieces } from '../rollups/sql.js'

export const DEFAULT_REPORT_WINDOW_MS = 24 * 3600_000
export const MAX_REPORT_DAYS = 366
export const MAX_REPORT_WINDOW_MS = MAX_REPORT_DAYS * 24 * 3600_000
const DAY = LEVELS['1d'].ms

export interface DayCompliance {
  /** The UTC day (YYYY-MM-DD); the window's first and last days count only their part inside the window. */
  date: string
  readings: number
  inRange: number
  percentage: number
  /** Lowest and highest temperature recorded that day; null without readings. */
  min: number | null
  max: number | null
  excursions: number
}

export interface UnitCompliance {
  unitId: string
  unitName: string
  readings: number
  inRange: number
  /** inRange / readings in percent, one decimal; 100 when the unit has no readings in the window. */
  percentage: number
  /** temperature_excursion alerts triggered in the window. */
  excursions: number
  min: number | null
  max: number | null
  /** Every UTC day the window touches, oldest first. */
  days: DayCompliance[]
}

export interface ComplianceReport {
  organizationId: string
  from: string
  to: string
  units: UnitCompliance[]
}

interface ReportRow {
  unit_id: string | null
  unit_name: string | null
  readings: number
  in_range: number
  percentage: number
  excursions: number
  lo: number | null
  hi: number | null
  days: string | null
}

type DayTuple = [string, number, number, number, number | null, number | null, number]

const percent = (readings: string, inRange: string) =>
  sql.raw(`case when ${readings} = 0 then 100 else round(100.0 * ${inRange} / ${readings}, 1) end::float8`)

/**
 * Per active unit: readings and in-range readings of [from, to), each judged by the thresholds of its time, the
 * excursion alerts triggered in it, min and max, and the same per UTC day. Whole days, hours and 5-minute buckets
 * come from the rollups, the partial 5-minute buckets at the edges from raw readings. No row at all means the
 * organization does not exist; one row with a null unit means it has no active unit.
 */
export function complianceReportSql (orgId: string, from: Date, to: Date): SQL {
  const pieces = windowPieces({ orgId }, decompose(from.getTime(), to.getTime(), ['1d', '1h', '5m']), [])
  const firstDay = new Date(floorTo(from.getTime(), DAY)).toISOString()
  const lastDay = new Date(floorTo(to.getTime() - 1, DAY)).toISOString()
  return sql`
    with p as (${pieces}),
    d as (
      select p.unit_id, date_bin('1 day', p.at, ${EPOCH}) as day, sum(p.readings)::int as readings,
        sum(p.readings - p.above - p.below)::int as in_range, min(p.temp_min) as lo, max(p.temp_max) as hi
      from p group by 1, 2
    ), x as (
      select unit_id, date_bin('1 day', triggered_at, ${EPOCH}) as day, count(*)::int as excursions
      from alerts
      where organization_id = ${orgId} and type = 'temperature_excursion'
        and triggered_at >= ${from.toISOString()}::timestamptz and triggered_at < ${to.toISOString()}::timestamptz
      group by 1, 2
    ), days as (
      select g as day from generate_series(${firstDay}::timestamptz, ${lastDay}::timestamptz, interval '24 hours') g
    ), ud as (
      select u.id as unit_id, days.day, coalesce(d.readings, 0) as readings, coalesce(d.in_range, 0) as in_range,
        d.lo, d.hi, coalesce(x.excursions, 0) as excursions
      from units u
      cross join days
      left join d on d.unit_id = u.id and d.day = days.day
      left join x on x.unit_id = u.id and x.day = days.day
      where u.organization_id = ${orgId} and u.is_active
    ), agg as (
      select unit_id, sum(readings)::int as readings, sum(in_range)::int as in_range, sum(excursions)::int as excursions,
        min(lo)::float8 as lo, max(hi)::float8 as hi,
        json_agg(json_build_array(to_char(day at time zone 'UTC', 'YYYY-MM-DD'), readings, in_range,
          ${percent('readings', 'in_range')}, lo::float8, hi::float8, excursions) order by day)::text as days
      from ud group by unit_id
    )
    select u.id as unit_id, u.name as unit_name,
      coalesce(a.readings, 0) as readings, coalesce(a.in_range, 0) as in_range,
      ${percent('coalesce(a.readings, 0)', 'a.in_range')} as percentage,
      coalesce(a.excursions, 0) as excursions, a.lo, a.hi, a.days
    from organizations o
    left join units u on u.organization_id = o.id and u.is_active
    left join agg a on a.unit_id = u.id
    where o.id = ${orgId}
    order by u.name, u.id`
}

export interface ReportWindowInput { from?: string, to?: string }

/** Defaults (to = now, from = to − 24 h) and bounds of a report window; ValidationError when it makes no sense. */
export function resolveReportWindow (input: ReportWindowInput, now: Date): { from: Date, to: Date } {
  const to = input.to === undefined ? now : parseInstant(input.to, 'to')
  const from = input.from === undefined ? new Date(to.getTime() - DEFAULT_REPORT_WINDOW_MS) : parseInstant(input.from, 'from')
  if (from.getTime() >= to.getTime()) throw new ValidationError('from must be before to')
  if (to.getTime() - from.getTime() > MAX_REPORT_WINDOW_MS) throw new ValidationError(`the report window may span at most ${MAX_REPORT_DAYS} days`)
  return { from, to }
}

function parseInstant (value: string, name: string): Date {
  const d = new Date(value)
  if (Number.isNaN(d.getTime())) throw new ValidationError(`${name} must be an ISO 8601 date-time`)
  return d
}

/** A report over its time budget: SQLSTATE 57014 (query_canceled) somewhere on the cause chain. */
function isStatementTimeout (err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === '57014') return true
  }
  return false
}

export interface ReportsOptions {
  db: Db
  clock: Clock
  /** statement_timeout of a report's queries (SET LOCAL in its transaction). */
  statementTimeoutMs: number
  /** Reports running at once per organization on this instance; more are refused (429). */
  concurrencyPerOrg: number
}

/** Compliance reports, always computed from the database of record (never cached), bounded in time and number. */
export function createReportsService (deps: ReportsOptions) {
  const { db, clock, statementTimeoutMs, concurrencyPerOrg } = deps
  const running = new Map<string, number>()

  return {
    /** A slot for one report of the organization, or null when it already runs as many as allowed. */
    acquire (orgId: string): (() => void) | null {
      const n = running.get(orgId) ?? 0
      if (n >= concurrencyPerOrg) return null
      running.set(orgId, n + 1)
      let released = false
      return () => {
        if (released) return
        released = true
        const left = (running.get(orgId) ?? 1) - 1
        if (left <= 0) running.delete(orgId)
        else running.set(orgId, left)
      }
    },

    async compliance (orgId: string, input: ReportWindowInput = {}): Promise<ComplianceReport> {
      const { from, to } = resolveReportWindow(input, clock.now())
      let result: ReportRow[]
      try {
        result = await db.transaction(async (tx) => {
          await tx.execute(sql.raw(`set local statement_timeout = ${Math.floor(statementTimeoutMs)}`))
          return rows<ReportRow>(tx, complianceReportSql(orgId, from, to))
        })
      } catch (err) {
        if (isStatementTimeout(err)) {
          throw new AppError('REPORT_TIMEOUT', `the report took longer than ${statementTimeoutMs} ms; ask for a shorter window`, 503, { cause: err })
        }
        throw err
      }
      if (result.length === 0) throw new NotFoundError('organization')
      const units: UnitCompliance[] = []
      for (const r of result) {
        if (r.unit_id === null || r.unit_name === null) continue
        const days = JSON.parse(r.days ?? '[]') as DayTuple[]
        units.push({
          unitId: r.unit_id,
          unitName: r.unit_name,
          readings: r.readings,
          inRange: r.in_range,
          percentage: r.percentage,
          excursions: r.excursions,
          min: r.lo,
          max: r.hi,
          days: days.map(([date, readings, inRange, percentage, min, max, excursions]) => ({ date, readings, inRange, percentage, min, max, excursions }))
        })
      }
      return { organizationId: orgId, from: from.toISOString(), to: to.toISOString(), units }
    }
  }
}

export type ReportsService = ReturnType<typeof createReportsService>
