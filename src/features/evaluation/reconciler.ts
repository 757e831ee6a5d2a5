import { sql } from 'drizzle-orm'
import { rows, type Db } from '../../infra/postgres.js'

/** Units re-evaluated per reconciliation at most: a backlog is worked off over several periods. */
export const RECONCILE_BATCH = 1000

/**
 * Units with readings stored but never evaluated: a reading newer than the unit's last evaluated one, received
 * before `receivedBefore` (so that readings whose job is merely queued are left to it). Evaluation is idempotent,
 * so a unit found twice costs only time. One index probe per unit on (unit_id, recorded_at).
 */
export async function findUnevaluated (db: Db, receivedBefore: Date, limit = RECONCILE_BATCH): Promise<Map<string, string[]>> {
  const found = await rows<{ organization_id: string, id: string }>(db, sql`
    select u.organization_id, u.id
    from units u
    where exists (
      select 1 from sensor_readings r
      where r.unit_id = u.id
        and r.recorded_at > coalesce(u.last_reading_at, '-infinity'::timestamptz)
        and r.received_at < ${receivedBefore.toISOString()}::timestamptz
    )
    order by u.organization_id, u.id
    limit ${limit}`)
  const byOrg = new Map<string, string[]>()
  for (const r of found) byOrg.set(r.organization_id, [...(byOrg.get(r.organization_id) ?? []), r.id])
  return byOrg
}

/** Whether the organization exists and owns every one of these units (a job coldboard itself could have made). */
export async function jobResolves (db: Db, organizationId: string, unitIds: string[]): Promise<boolean> {
  const ids = [...new Set(unitIds)]
  if (ids.length === 0) return true
  const [row] = await rows<{ n: number }>(db, sql`
    select count(*)::int as n from units
    where organization_id = ${organizationId} and id in (${sql.join(ids.map((id) => sql`${id}::uuid`), sql`, `)})`)
  return row?.n === ids.length
}
