import { sql, type SQL } from 'drizzle-orm'
import { ValidationError, NotFoundError } from '../../errors.js'
import { rows, type Db } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'

export const DEFAULT_REPORT_WINDOW_MS = 24 * 3600_000
export const MAX_REPORT_WINDOW_MS = 93 * 24 * 3600_000

export interface UnitCompliance {
  unitId: string
  unitName: string
  readings: number
  inRange: number
  /** inRange / readings in percent, one decimal; 100 when the unit has no readings in the window. */
  percentage: number
  /** temperature_excursion alerts triggered in the window. */
  excursions: number
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
}

/**
 * Per active unit: readings and in-range readings of [from, to) against the unit's current thresholds, and the
 * excursion alerts triggered in it. No row at all means the organization does not exist; one row with a null
 * unit means it has no active unit. Half-open so that consecutive reports never count a reading twice.
 */
export function complianceReportSql (orgId: string, from: string, to: string): SQL {
  return sql`
    with r as (
      select r.unit_id, count(*)::int as readings,
        count(*) filter (where r.temperature between u.temp_min and u.temp_max)::int as in_range
      from sensor_readings r
      join units u on u.id = r.unit_id
      where r.organization_id = ${orgId}
        and r.recorded_at >= ${from}::timestamptz and r.recorded_at < ${to}::timestamptz
        and u.organization_id = ${orgId} and u.is_active
      group by r.unit_id
    ), x as (
      select unit_id, count(*)::int as excursions
      from alerts
      where organization_id = ${orgId} and type = 'temperature_excursion'
        and triggered_at >= ${from}::timestamptz and triggered_at < ${to}::timestamptz
      group by unit_id
    )
    select u.id as unit_id, u.name as unit_name,
      coalesce(r.readings, 0) as readings,
      coalesce(r.in_range, 0) as in_range,
      case when coalesce(r.readings, 0) = 0 then 100 else round(100.0 * r.in_range / r.readings, 1) end::float8 as percentage,
      coalesce(x.excursions, 0) as excursions
    from organizations o
    left join units u on u.organization_id = o.id and u.is_active
    left join r on r.unit_id = u.id
    left join x on x.unit_id = u.id
    where o.id = ${orgId}
    order by u.name, u.id`
}

export interface ReportWindowInput { from?: string, to?: string }

/** Defaults (to = now, from = to − 24 h) and bounds of a report window; ValidationError when it makes no sense. */
export function resolveReportWindow (input: ReportWindowInput, now: Date): { from: Date, to: Date } {
  const to = input.to === undefined ? now : parseInstant(input.to, 'to')
  const from = input.from === undefined ? new Date(to.getTime() - DEFAULT_REPORT_WINDOW_MS) : parseInstant(input.from, 'from')
  if (from.getTime() >= to.getTime()) throw new ValidationError('from must be before to')
  if (to.getTime() - from.getTime() > MAX_REPORT_WINDOW_MS) throw new ValidationError('the report window may span at most 93 days')
  return { from, to }
}

function parseInstant (value: string, name: string): Date {
  const d = new Date(value)
  if (Number.isNaN(d.getTime())) throw new ValidationError(`${name} must be an ISO 8601 date-time`)
  return d
}

/** Compliance reports, always computed from the database of record (never cached). */
export function createReportsService (deps: { db: Db, clock: Clock }) {
  const { db, clock } = deps
  return {
    async compliance (orgId: string, input: ReportWindowInput = {}): Promise<ComplianceReport> {
      const { from, to } = resolveReportWindow(input, clock.now())
      const result = await rows<ReportRow>(db, complianceReportSql(orgId, from.toISOString(), to.toISOString()))
      if (result.length === 0) throw new NotFoundError('organization')
      const units: UnitCompliance[] = []
      for (const r of result) {
        if (r.unit_id === null || r.unit_name === null) continue
        units.push({
          unitId: r.unit_id,
          unitName: r.unit_name,
          readings: r.readings,
          inRange: r.in_range,
          percentage: r.percentage,
          excursions: r.excursions
        })
      }
      return { organizationId: orgId, from: from.toISOString(), to: to.toISOString(), units }
    }
  }
}

export type ReportsService = ReturnType<typeof createReportsService>
