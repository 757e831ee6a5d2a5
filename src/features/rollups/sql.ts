import { sql, type SQL } from 'drizzle-orm'
import { arrayLiteral } from '../../infra/postgres.js'
import { LEVELS, type Level, type Segment } from './buckets.js'

// The SQL that reads and rebuilds rollups. The statement trigger of migration 0003 maintains them on insert with
// the same rule: a reading is above when temperature > temp_max, below when < temp_min, of the unit_thresholds row
// with the greatest valid_from <= recorded_at (in range otherwise, also when a unit has no such row).

export const EPOCH = sql.raw('timestamptz \'1970-01-01 00:00:00+00\'')

const iso = (ms: number) => new Date(ms).toISOString()

/** Whose rows: an organization's, one unit's of it, or some units' of it (`unitIds`: one array parameter). */
export interface Scope { orgId: string, unitId?: string, unitIds?: readonly string[] }

/** Raw readings of [from, to], each end included or not. */
export interface RawRange { from: number, to: number, fromIncluded: boolean, toIncluded: boolean }

/** The advisory lock key of an organization's rollups (the trigger takes it shared, rebuilds exclusively). */
export const rollupLockKey = (orgId: string): SQL => sql`hashtextextended('coldboard:rollups:' || ${orgId}::text, 0)`

function scopeWhere (alias: string, scope: Scope): SQL {
  const a = sql.raw(alias)
  if (scope.unitIds !== undefined) return sql`${a}.organization_id = ${scope.orgId}::uuid and ${a}.unit_id = any(${arrayLiteral(scope.unitIds)}::uuid[])`
  return scope.unitId === undefined
    ? sql`${a}.organization_id = ${scope.orgId}::uuid`
    : sql`${a}.organization_id = ${scope.orgId}::uuid and ${a}.unit_id = ${scope.unitId}::uuid`
}

function rollupPiece (level: Level, scope: Scope, r: { from: number, to: number }): SQL {
  return sql`
    select r.unit_id, r.bucket as at, r.readings, r.above, r.below, r.temp_sum, r.temp_min, r.temp_max
    from ${sql.raw(LEVELS[level].table)} r
    where ${scopeWhere('r', scope)} and r.bucket >= ${iso(r.from)}::timestamptz and r.bucket < ${iso(r.to)}::timestamptz`
}

/** The scope's threshold periods [valid_from, valid_to): what raw readings are judged by, in a hash join. */
function thresholdPeriods (scope: Scope): SQL {
  return sql`
    select h.unit_id, h.valid_from, h.temp_min, h.temp_max,
      coalesce(lead(h.valid_from) over (partition by h.unit_id order by h.valid_from), 'infinity') as valid_to
    from unit_thresholds h
    where ${scopeWhere('h', scope)}`
}

// One piece per range (not an OR of ranges): each is then a plain range scan of its index (index-only for raw
// readings, the covering index holding unit and temperature).
function rawPiece (scope: Scope, r: RawRange): SQL {
  return sql`
    select n.unit_id, n.recorded_at as at, 1 as readings,
      coalesce((n.temperature > t.temp_max)::int, 0) as above,
      coalesce((n.temperature < t.temp_min)::int, 0) as below,
      n.temperature::numeric as temp_sum, n.temperature as temp_min, n.temperature as temp_max
    from sensor_readings n
    left join th t on t.unit_id = n.unit_id and n.recorded_at >= t.valid_from and n.recorded_at < t.valid_to
    where ${scopeWhere('n', scope)}
      and n.recorded_at ${sql.raw(r.fromIncluded ? '>=' : '>')} ${iso(r.from)}::timestamptz
      and n.recorded_at ${sql.raw(r.toIncluded ? '<=' : '<')} ${iso(r.to)}::timestamptz`
}

/**
 * Rows (unit_id, at, readings, above, below, temp_sum, temp_min, temp_max) that together count every reading of
 * the window once: whole buckets from the rollup tables, the rest from raw readings. `at` is the bucket's start
 * or the reading's time; each row lies inside one bucket of every coarser level (so inside one UTC day).
 */
export function windowPieces (scope: Scope, segments: Segment[], raw: RawRange[]): SQL {
  const parts: SQL[] = []
  for (const s of segments) if (s.level !== 'raw') parts.push(rollupPiece(s.level, scope, s))
  const rawRanges = [...raw, ...segments.filter((s) => s.level === 'raw').map((s) => ({ from: s.from, to: s.to, fromIncluded: true, toIncluded: false }))]
    .filter((r) => r.from < r.to || (r.from === r.to && r.fromIncluded && r.toIncluded))
  for (const r of rawRanges) parts.push(rawPiece(scope, r))
  if (parts.length === 0) return sql`select null::uuid as unit_id, null::timestamptz as at, 0 as readings, 0 as above, 0 as below, 0::numeric as temp_sum, null::numeric as temp_min, null::numeric as temp_max where false`
  const union = sql.join(parts, sql` union all `)
  return rawRanges.length === 0 ? union : sql`with th as (${thresholdPeriods(scope)}) ${union}`
}

function bounds (column: string, from: Date | null, to: Date | null): SQL {
  const c = sql.raw(column)
  return sql`${from === null ? sql`` : sql`and ${c} >= ${from.toISOString()}::timestamptz`}
    ${to === null ? sql`` : sql`and ${c} < ${to.toISOString()}::timestamptz`}`
}

/** Deletes the scope's rollups of every level of one level with a bucket in [from, to) (null: no bound). */
export function deleteRollupsSql (level: Level, scope: Scope, from: Date | null, to: Date | null): SQL {
  return sql`
    delete from ${sql.raw(LEVELS[level].table)} r
    where ${scopeWhere('r', scope)} ${bounds('r.bucket', from, to)}`
}

/**
 * Recomputes the scope's rollups of every level from the raw readings of [from, to) (day-aligned; null: no
 * bound), once deleteRollupsSql has emptied them. One (readings, buckets) row: what the 5-minute level now holds.
 */
export function rebuildRollupsSql (scope: Scope, from: Date | null, to: Date | null): SQL {
  const roll = (level: Level) => sql.raw(`date_bin('${LEVELS[level].interval}', bucket, timestamptz '1970-01-01 00:00:00+00')`)
  const coarser = (level: Level) => sql`
    insert into ${sql.raw(LEVELS[level].table)} (unit_id, bucket, organization_id, readings, above, below, temp_sum, temp_min, temp_max)
    select unit_id, ${roll(level)}, organization_id, sum(readings), sum(above), sum(below), sum(temp_sum), min(temp_min), max(temp_max)
    from b group by 1, 2, 3`
  return sql`
    with th as (
      select unit_id, valid_from, temp_min, temp_max,
        coalesce(lead(valid_from) over (partition by unit_id order by valid_from), 'infinity') as valid_to
      from unit_thresholds h
      where ${scopeWhere('h', scope)}
    ), b as materialized (
      select n.organization_id, n.unit_id, date_bin('5 minutes', n.recorded_at, ${EPOCH}) as bucket,
        count(*)::int as readings,
        count(*) filter (where n.temperature > t.temp_max)::int as above,
        count(*) filter (where n.temperature < t.temp_min)::int as below,
        sum(n.temperature) as temp_sum, min(n.temperature) as temp_min, max(n.temperature) as temp_max
      from sensor_readings n
      left join th t on t.unit_id = n.unit_id and n.recorded_at >= t.valid_from and n.recorded_at < t.valid_to
      where ${scopeWhere('n', scope)} ${bounds('n.recorded_at', from, to)}
      group by 1, 2, 3
    ), f as (
      insert into reading_rollups_5m (unit_id, bucket, organization_id, readings, above, below, temp_sum, temp_min, temp_max)
      select unit_id, bucket, organization_id, readings, above, below, temp_sum, temp_min, temp_max from b
      returning readings
    ), h as (${coarser('1h')} returning 1), d as (${coarser('1d')} returning 1)
    select coalesce(sum(f.readings), 0)::int as readings, count(*)::int as buckets,
      (select count(*) from h)::int as hours, (select count(*) from d)::int as days
    from f`
}
