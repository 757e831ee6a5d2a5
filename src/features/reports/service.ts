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

interface UnitRow { unit_id: string | null, unit_name: string | null }
interface DayRow { unit_id: string, day_ms: number, readings: number, in_range: number, lo: number | null, hi: number | null }
interface ExcursionRow { unit_id: string, day_ms: number, excursions: number }

/** inRange / readings in percent to one decimal, rounded half away from zero as PostgreSQL's round(numeric); 100 without readings. */
export function percentage (inRange: number, readings: number): number {
  return readings === 0 ? 100 : Math.round(1000 * inRange / readings) / 10
}

/** The organization's active units by name; no row at all when it does not exist, one null row when it has none. */
export function reportUnitsSql (orgId: string): SQL {
  return sql`
    select u.id as unit_id, u.name as unit_name
    from organizations o
    left join units u on u.organization_id = o.id and u.is_active
    where o.id = ${orgId}
    order by u.name, u.id`
}

/**
 * Per unit and UTC day of [from, to): readings, in-range readings (each judged by the thresholds of its time), min
 * and max; only (unit, day) pairs with readings. Whole days are daily rollup rows as they are; the partial first and
 * last days are summed from hourly and 5-minute rollups and the raw readings of the partial 5-minute buckets at the
 * edges. The costly statement of a report (bench/rollups.ts).
 */
export function complianceDaysSql (orgId: string, from: Date, to: Date): SQL {
  const segments = decompose(from.getTime(), to.getTime(), ['1d', '1h', '5m'])
  const whole = segments.filter((s) => s.level === '1d')
  const partial = segments.filter((s) => s.level !== '1d')
  const parts: SQL[] = whole.map((d) => sql`
    select unit_id, (extract(epoch from bucket) * 1000)::float8 as day_ms, readings, readings - above - below as in_range,
      temp_min::float8 as lo, temp_max::float8 as hi
    from reading_rollups_1d
    where organization_id = ${orgId} and bucket >= ${new Date(d.from).toISOString()}::timestamptz and bucket < ${new Date(d.to).toISOString()}::timestamptz`)
  // The window's first and last days, when partial: their pieces summed per unit and day.
  if (partial.length > 0) {
    parts.push(sql`
      select p.unit_id, (extract(epoch from date_bin('1 day', p.at, ${EPOCH})) * 1000)::float8 as day_ms,
        sum(p.readings)::int as readings, sum(p.readings - p.above - p.below)::int as in_range,
        min(p.temp_min)::float8 as lo, max(p.temp_max)::float8 as hi
      from (${windowPieces({ orgId }, partial, [])}) p
      group by 1, 2`)
  }
  return sql.join(parts, sql` union all `)
}

/** temperature_excursion alerts triggered in [from, to), per unit and UTC day. */
export function excursionsSql (orgId: string, from: Date, to: Date): SQL {
  return sql`
    select unit_id, (extract(epoch from date_bin('1 day', triggered_at, ${EPOCH})) * 1000)::float8 as day_ms, count(*)::int as excursions
    from alerts
    where organization_id = ${orgId} and type = 'temperature_excursion'
      and triggered_at >= ${from.toISOString()}::timestamptz and triggered_at < ${to.toISOString()}::timestamptz
    group by 1, 2`
}

/**
 * The report from its three result sets: every UTC day the window touches for every active unit (zeros where
 * nothing was recorded), the unit's totals summed from its days. Rows of units that are not active are ignored.
 */
export function assembleReport (orgId: string, from: Date, to: Date, unitRows: UnitRow[], dayRows: DayRow[], excursionRows: ExcursionRow[]): ComplianceReport {
  const days: number[] = []
  for (let d = floorTo(from.getTime(), DAY); d < to.getTime(); d += DAY) days.push(d)
  const dates = days.map((d) => new Date(d).toISOString().slice(0, 10))
  const index = new Map(days.map((d, i) => [d, i]))
  const perUnit = new Map<string, DayCompliance[]>()
  const ofUnit = (unitId: string): DayCompliance[] => {
    let list = perUnit.get(unitId)
    if (!list) {
      list = dates.map((date) => ({ date, readings: 0, inRange: 0, percentage: 100, min: null, max: null, excursions: 0 }))
      perUnit.set(unitId, list)
    }
    return list
  }
  for (const r of dayRows) {
    const day = ofUnit(r.unit_id)[index.get(r.day_ms)!]!
    day.readings = r.readings
    day.inRange = r.in_range
    day.percentage = percentage(r.in_range, r.readings)
    day.min = r.lo
    day.max = r.hi
  }
  for (const x of excursionRows) ofUnit(x.unit_id)[index.get(x.day_ms)!]!.excursions = x.excursions
  const units: UnitCompliance[] = []
  for (const u of unitRows) {
    if (u.unit_id === null || u.unit_name === null) continue
    const list = ofUnit(u.unit_id)
    let readings = 0
    let inRange = 0
    let excursions = 0
    let min: number | null = null
    let max: number | null = null
    for (const d of list) {
      readings += d.readings
      inRange += d.inRange
      excursions += d.excursions
      if (d.min !== null && (min === null || d.min < min)) min = d.min
      if (d.max !== null && (max === null || d.max > max)) max = d.max
    }
    units.push({ unitId: u.unit_id, unitName: u.unit_name, readings, inRange, percentage: percentage(inRange, readings), excursions, min, max, days: list })
  }
  return { organizationId: orgId, from: from.toISOString(), to: to.toISOString(), units }
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
      try {
        // One snapshot for the three statements, each within the report's time budget.
        const [unitRows, dayRows, excursionRows] = await db.transaction(async (tx) => {
          await tx.execute(sql.raw(`set local statement_timeout = ${Math.floor(statementTimeoutMs)}`))
          return [
            await rows<UnitRow>(tx, reportUnitsSql(orgId)),
            await rows<DayRow>(tx, complianceDaysSql(orgId, from, to)),
            await rows<ExcursionRow>(tx, excursionsSql(orgId, from, to))
          ] as const
        }, { isolationLevel: 'repeatable read' })
        if (unitRows.length === 0) throw new NotFoundError('organization')
        return assembleReport(orgId, from, to, unitRows, dayRows, excursionRows)
      } catch (err) {
        if (isStatementTimeout(err)) {
          throw new AppError('REPORT_TIMEOUT', `the report took longer than ${statementTimeoutMs} ms; ask for a shorter window`, 503, { cause: err })
        }
        throw err
      }
    }
  }
}

export type ReportsService = ReturnType<typeof createReportsService>
