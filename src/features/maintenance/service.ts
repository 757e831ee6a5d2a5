import { sql } from 'drizzle-orm'
import type { FastifyBaseLogger } from 'fastify'
import { rows, type Db } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'
import { LEVELS, floorTo } from '../rollups/buckets.js'
import {
  addMonths, covers, createMonthPartition, listPartitions, monthStart, monthsInDefault, moveFromDefault, partitionName
} from './partitions.js'

const DAY = LEVELS['1d'].ms
/** Months created ahead of the current one. */
export const MONTHS_AHEAD = 2

export interface MaintenanceOptions {
  db: Db
  clock: Clock
  readingsRetentionDays: number
  rollupRetentionDays: number
  log: FastifyBaseLogger
}

export interface MaintenanceSummary {
  /** Partitions created (ahead of time, or for rows moved out of the default partition). */
  created: string[]
  /** Rows moved out of the default partition, per partition. */
  moved: Array<{ partition: string, readings: number }>
  /** Raw partitions dropped whole: their every reading was older than the readings' retention. */
  dropped: string[]
  /** Rollup rows deleted per level. */
  pruned: { '5m': number, '1h': number, '1d': number }
  /** Raw readings (and 5-minute rollups) before it are gone; hourly and daily rollups before `rollups`. */
  horizons: { readings: string | null, rollups: string }
}

/**
 * Partitions and retention: creates this month's and the next months' partitions, moves rows parked in the
 * default partition into partitions of their own, drops raw partitions entirely older than
 * READINGS_RETENTION_DAYS (and the 5-minute rollups with them), prunes rollups older than ROLLUP_RETENTION_DAYS.
 * Run by the worker (a repeatable job) and by `coldboard maintain`; idempotent.
 */
export function createMaintenance (opts: MaintenanceOptions) {
  const { db, clock } = opts
  const log = opts.log.child({ component: 'maintenance' })
  // Months known to have a partition: ingestion asks for each batch, the catalog only when a month is new.
  const known = new Set<number>()

  async function ensureMonths (months: number[]): Promise<string[]> {
    const missing = [...new Set(months)].filter((m) => !known.has(m))
    if (missing.length === 0) return []
    const created: string[] = []
    let parts = await listPartitions(db)
    for (const m of missing) {
      if (!covers(parts, m)) {
        try {
          await createMonthPartition(db, m)
          created.push(partitionName(m))
        } catch (err) {
          // Another process created it meanwhile, or the default partition holds rows of that month (maintenance
          // moves them): either way the readings go in, into the default partition at worst.
          log.warn({ err: (err as Error).message, partition: partitionName(m) }, 'could not create a partition')
        }
        parts = await listPartitions(db)
      }
      if (covers(parts, m)) known.add(m)
    }
    return created
  }

  return {
    /** True when the months of these instants are known to have partitions (no query: ensurePartitions would do nothing). */
    partitionsKnown: (times: Date[]): boolean => times.every((t) => known.has(monthStart(t.getTime()))),

    /** Makes sure the months of these instants have partitions (on demand, before an insert). */
    async ensurePartitions (times: Date[]): Promise<void> {
      const created = await ensureMonths(times.map((t) => monthStart(t.getTime())))
      if (created.length > 0) log.info({ created }, 'created partitions on demand')
    },

    async run (): Promise<MaintenanceSummary> {
      const now = clock.now().getTime()
      const created: string[] = []
      const moved: MaintenanceSummary['moved'] = []
      for (const m of await monthsInDefault(db)) {
        const readings = await moveFromDefault(db, m)
        created.push(partitionName(m))
        moved.push({ partition: partitionName(m), readings })
      }
      const current = monthStart(now)
      created.push(...await ensureMonths(Array.from({ length: MONTHS_AHEAD + 1 }, (_, i) => addMonths(current, i))))

      const dropped: string[] = []
      const readingsCutoff = now - opts.readingsRetentionDays * DAY
      let horizon = 0
      for (const p of await listPartitions(db)) {
        if (p.isDefault || p.to === null || p.to > readingsCutoff) continue
        await db.execute(sql.raw(`DROP TABLE "${p.name}"`))
        dropped.push(p.name)
        horizon = Math.max(horizon, p.to)
        if (p.from !== null) for (let m = p.from; m < p.to; m = addMonths(m, 1)) known.delete(m)
        else known.clear()
      }
      if (horizon > 0) await setHorizon('readings', horizon)
      const readingsHorizon = await getHorizon('readings')

      const rollupCutoff = floorTo(now - opts.rollupRetentionDays * DAY, DAY)
      await setHorizon('rollups', rollupCutoff)
      const pruned = {
        '5m': await prune('reading_rollups_5m', Math.max(rollupCutoff, readingsHorizon ?? -Infinity)),
        '1h': await prune('reading_rollups_1h', rollupCutoff),
        '1d': await prune('reading_rollups_1d', rollupCutoff)
      }
      const summary = {
        created,
        moved,
        dropped,
        pruned,
        horizons: { readings: readingsHorizon === null ? null : new Date(readingsHorizon).toISOString(), rollups: new Date(rollupCutoff).toISOString() }
      }
      if (created.length + dropped.length + moved.length > 0) log.info(summary, 'maintenance')
      return summary
    }
  }

  async function setHorizon (kind: 'readings' | 'rollups', ms: number): Promise<void> {
    await db.execute(sql`
      insert into retention_horizons (kind, horizon) values (${kind}, ${new Date(ms).toISOString()}::timestamptz)
      on conflict (kind) do update set horizon = greatest(retention_horizons.horizon, excluded.horizon)`)
  }

  async function getHorizon (kind: 'readings' | 'rollups'): Promise<number | null> {
    const [row] = await rows<{ ms: number }>(db, sql`
      select (extract(epoch from horizon) * 1000)::float8 as ms from retention_horizons where kind = ${kind}`)
    return row?.ms ?? null
  }

  // Per unit through the (unit_id, bucket) primary key: only the expired rows are visited.
  async function prune (table: string, beforeMs: number): Promise<number> {
    if (!Number.isFinite(beforeMs)) return 0
    const [res] = await rows<{ n: number }>(db, sql`
      with d as (
        delete from ${sql.raw(table)} r using units u
        where r.unit_id = u.id and r.bucket < ${new Date(beforeMs).toISOString()}::timestamptz
        returning 1
      ) select count(*)::int as n from d`)
    return res?.n ?? 0
  }
}
export type Maintenance = ReturnType<typeof createMaintenance>
