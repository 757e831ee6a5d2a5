import { sql } from 'drizzle-orm'
import { rows, type Db, type DbOrTx, type Tx } from '../../infra/postgres.js'
import { LEVELS, ceilTo, floorTo, type Level } from './buckets.js'
import { deleteRollupsSql, rebuildRollupsSql, rollupLockKey, type Scope } from './sql.js'

const DAY = LEVELS['1d'].ms

export interface RebuildOptions {
  orgId?: string
  from?: Date
  /** Exclusive; no end when absent. */
  to?: Date
}

export interface RebuiltOrganization {
  orgId: string
  /** The day-aligned range rebuilt: [from, to); null ends are open. */
  from: string | null
  to: string | null
  readings: number
  buckets: number
}

/** Raw readings (and 5-minute rollups) before this instant were dropped by retention; null when none was. */
export async function readingsHorizon (db: DbOrTx): Promise<Date | null> {
  const [row] = await rows<{ ms: number }>(db, sql`
    select (extract(epoch from horizon) * 1000)::float8 as ms from retention_horizons where kind = 'readings'`)
  return row ? new Date(row.ms) : null
}

/**
 * The rollups' write side beyond the insert trigger: threshold changes and rebuilds, which take the organization's
 * rollup lock exclusively so that no insert of that organization counts under thresholds they are replacing.
 */
export function createRollupsService (deps: { db: Db }) {
  const { db } = deps

  async function recompute (tx: Tx, scope: Scope, from: Date | null, to: Date | null) {
    for (const level of Object.keys(LEVELS) as Level[]) await tx.execute(deleteRollupsSql(level, scope, from, to))
    const [res] = await rows<{ readings: number, buckets: number }>(tx, rebuildRollupsSql(scope, from, to))
    return res ?? { readings: 0, buckets: 0 }
  }

  return {
    /**
     * Takes the organization's rollup lock exclusively until the transaction ends. A writer that will change
     * thresholds takes it first, before any row lock, so that lock order is the same everywhere.
     */
    async lockOrgIn (tx: Tx, orgId: string): Promise<void> {
      await tx.execute(sql`select pg_advisory_xact_lock(${rollupLockKey(orgId)})`)
    },

    /**
     * After a unit's thresholds changed at `validFrom` (caller holds lockOrgIn): its rollups of the day of
     * validFrom onwards are recomputed from raw readings, so they judge every reading by the thresholds of its time.
     */
    async rederiveUnitIn (tx: Tx, orgId: string, unitId: string, validFrom: Date): Promise<void> {
      await recompute(tx, { orgId, unitId }, new Date(floorTo(validFrom.getTime(), DAY)), null)
    },

    /**
     * Recomputes rollups from raw readings, per organization in a transaction of its own: [from, to) widened to
     * whole UTC days and cut at the readings' retention horizon (what raw readings no longer back is kept).
     * Idempotent.
     */
    async rebuild (opts: RebuildOptions = {}): Promise<RebuiltOrganization[]> {
      const horizon = await readingsHorizon(db)
      let fromMs = opts.from ? floorTo(opts.from.getTime(), DAY) : null
      if (horizon && (fromMs === null || fromMs < horizon.getTime())) fromMs = ceilTo(horizon.getTime(), DAY)
      const toMs = opts.to ? ceilTo(opts.to.getTime(), DAY) : null
      const orgIds = opts.orgId
        ? [opts.orgId]
        : (await rows<{ id: string }>(db, sql`select id from organizations order by id`)).map((r) => r.id)
      const out: RebuiltOrganization[] = []
      for (const orgId of orgIds) {
        if (fromMs !== null && toMs !== null && fromMs >= toMs) {
          out.push({ orgId, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), readings: 0, buckets: 0 })
          continue
        }
        const res = await db.transaction(async (tx) => {
          await tx.execute(sql`select pg_advisory_xact_lock(${rollupLockKey(orgId)})`)
          return recompute(tx, { orgId }, fromMs === null ? null : new Date(fromMs), toMs === null ? null : new Date(toMs))
        })
        out.push({
          orgId,
          from: fromMs === null ? null : new Date(fromMs).toISOString(),
          to: toMs === null ? null : new Date(toMs).toISOString(),
          ...res
        })
      }
      return out
    }
  }
}
export type RollupsService = ReturnType<typeof createRollupsService>
