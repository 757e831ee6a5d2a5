import { sql } from 'drizzle-orm'
import { rows, type Db } from '../../infra/postgres.js'

/** One partition of sensor_readings: its range [from, to) in epoch ms (null: MINVALUE / MAXVALUE), or the default. */
export interface Partition { name: string, from: number | null, to: number | null, isDefault: boolean }

/** The first instant of the UTC month holding `ms`. */
export function monthStart (ms: number): number {
  const d = new Date(ms)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)
}

export function addMonths (monthMs: number, n: number): number {
  const d = new Date(monthMs)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + n, 1)
}

export function partitionName (monthMs: number): string {
  const d = new Date(monthMs)
  return `sensor_readings_${d.getUTCFullYear()}_${String(d.getUTCMonth() + 1).padStart(2, '0')}`
}

/** Whether a non-default partition holds the whole month starting at monthMs. */
export function covers (parts: Partition[], monthMs: number): boolean {
  const end = addMonths(monthMs, 1)
  return parts.some((p) => !p.isDefault && (p.from === null || p.from <= monthMs) && (p.to === null || p.to >= end))
}

/** The partitions of sensor_readings and their bounds, read from the catalog. */
export async function listPartitions (db: Db): Promise<Partition[]> {
  // pg_get_expr renders the bounds as timestamptz literals with their offset: cast back, they are exact.
  const found = await rows<{ name: string, bound: string, from_ms: number | null, to_ms: number | null }>(db, sql`
    with p as (
      select c.relname::text as name, pg_get_expr(c.relpartbound, c.oid) as bound
      from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'sensor_readings'::regclass
    ), m as (select name, bound, regexp_match(bound, 'FROM \\((.+)\\) TO \\((.+)\\)') as m from p)
    select name, bound,
      case when m is null or m[1] = 'MINVALUE' then null else (extract(epoch from btrim(m[1], '''')::timestamptz) * 1000)::float8 end as from_ms,
      case when m is null or m[2] = 'MAXVALUE' then null else (extract(epoch from btrim(m[2], '''')::timestamptz) * 1000)::float8 end as to_ms
    from m order by from_ms nulls first`)
  return found.map((p) => ({ name: p.name, from: p.from_ms, to: p.to_ms, isDefault: p.bound === 'DEFAULT' }))
}

/** Creates the month's partition unless one exists; throws when the default partition holds rows of that month. */
export async function createMonthPartition (db: Db, monthMs: number): Promise<void> {
  const from = new Date(monthMs).toISOString()
  const to = new Date(addMonths(monthMs, 1)).toISOString()
  await db.execute(sql.raw(`CREATE TABLE IF NOT EXISTS "${partitionName(monthMs)}" PARTITION OF sensor_readings FOR VALUES FROM ('${from}') TO ('${to}')`))
}

/**
 * Moves the rows the default partition holds for one month into a new partition of that month, all in one
 * transaction: rows copied into a plain table, deleted from the default, the table attached (which builds its
 * indexes). Inserted into the partition directly, not through the parent, so the rollups do not count them twice.
 */
export async function moveFromDefault (db: Db, monthMs: number): Promise<number> {
  const name = partitionName(monthMs)
  const from = new Date(monthMs).toISOString()
  const to = new Date(addMonths(monthMs, 1)).toISOString()
  return db.transaction(async (tx) => {
    await tx.execute(sql.raw(`CREATE TABLE "${name}" (LIKE sensor_readings INCLUDING DEFAULTS)`))
    const [moved] = await rows<{ n: number }>(tx, sql.raw(`
      WITH moved AS (
        DELETE FROM sensor_readings_default WHERE recorded_at >= '${from}' AND recorded_at < '${to}' RETURNING *
      ), ins AS (INSERT INTO "${name}" SELECT * FROM moved RETURNING 1)
      SELECT count(*)::int AS n FROM ins`))
    await tx.execute(sql.raw(`ALTER TABLE sensor_readings ATTACH PARTITION "${name}" FOR VALUES FROM ('${from}') TO ('${to}')`))
    return moved?.n ?? 0
  })
}

/** The months (UTC month starts) of which the default partition holds rows. */
export async function monthsInDefault (db: Db): Promise<number[]> {
  const found = await rows<{ ms: number }>(db, sql`
    select distinct (extract(epoch from date_trunc('month', recorded_at, 'UTC')) * 1000)::float8 as ms
    from sensor_readings_default order by 1`)
  return found.map((r) => r.ms)
}

/** Creates the partitions missing for every month of [fromMs, toMs] (bulk loads: seeding). Returns their names. */
export async function ensureMonthPartitions (db: Db, fromMs: number, toMs: number): Promise<string[]> {
  const parts = await listPartitions(db)
  const created: string[] = []
  for (let m = monthStart(fromMs); m <= toMs; m = addMonths(m, 1)) {
    if (covers(parts, m)) continue
    await createMonthPartition(db, m)
    created.push(partitionName(m))
  }
  return created
}
