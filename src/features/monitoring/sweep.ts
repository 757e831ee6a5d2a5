import { and, asc, eq, inArray, lte, ne, sql } from 'drizzle-orm'
import { alerts, units, type Alert } from '../../db/schema.js'
import { rows, type Tx } from '../../infra/postgres.js'
import type { ChangeEvent } from '../changes/events.js'
import { createLifecycle, type LifecycleResult } from './lifecycle.js'
import { iso } from './sql-values.js'
import { lockOpenAlerts, unitUpdate, writeAlerts, type ProcessorDeps } from './unit-processor.js'

/*
 * The sweeper's time-driven transitions, each in the caller's transaction. Candidates are found and locked in
 * one statement and written back set-based, so a sweep costs the same few queries for ten units or ten thousand;
 * what happens to each unit is decided by the same lifecycle as a reading (lifecycle.ts). Rows locked by
 * ingestion right now are skipped (SKIP LOCKED): ingestion is about to give them fresh data, and the next
 * sweep sees them anyway.
 */

function byUnit (list: Alert[]): Map<string, Alert[]> {
  const out = new Map<string, Alert[]>()
  for (const a of list) out.set(a.unitId, [...(out.get(a.unitId) ?? []), a])
  return out
}

/** Active units silent since `cutoff` (or never heard from and created before it) → offline + offline alert. */
export async function sweepOfflineUnits (tx: Tx, deps: ProcessorDeps, now: Date, cutoff: Date): Promise<ChangeEvent[]> {
  const stale = await tx.select().from(units)
    .where(and(
      eq(units.isActive, true),
      ne(units.state, 'offline'),
      sql`coalesce(${units.lastReadingAt}, ${units.createdAt}) < ${iso(cutoff)}::timestamptz`
    ))
    .orderBy(asc(units.id))
    .for('update', { skipLocked: true })
  if (stale.length === 0) return []
  const open = byUnit(await lockOpenAlerts(tx, stale.map((u) => u.id)))
  const results: LifecycleResult[] = []
  const events: ChangeEvent[] = []
  for (const unit of stale) {
    const lifecycle = createLifecycle(unit, open.get(unit.id) ?? [], deps)
    lifecycle.goOffline(now)
    const result = lifecycle.result()
    results.push(result)
    events.push(...unitUpdate(unit, result), ...result.events)
  }
  const values = sql.join(stale.map((u, i) => sql`(${u.id}::uuid, ${results[i]!.state}::unit_state, ${iso(results[i]!.stateChangedAt)}::timestamptz)`), sql`, `)
  await tx.execute(sql`
    UPDATE units u SET state = v.state, state_changed_at = v.changed_at
    FROM (VALUES ${values}) AS v(id, state, changed_at)
    WHERE u.id = v.id`)
  await writeAlerts(tx, results)
  return events
}

interface OfflineDeviceRow { id: string, organization_id: string, unit_id: string }

/** Online devices not seen since `cutoff` → offline. */
export async function sweepOfflineDevices (tx: Tx, cutoff: Date): Promise<ChangeEvent[]> {
  const changed = await rows<OfflineDeviceRow>(tx, sql`
    WITH stale AS (
      SELECT id FROM devices
      WHERE status = 'online' AND (last_seen_at IS NULL OR last_seen_at < ${iso(cutoff)}::timestamptz)
      ORDER BY id
      FOR UPDATE SKIP LOCKED
    )
    UPDATE devices d SET status = 'offline' FROM stale WHERE d.id = stale.id
    RETURNING d.id, d.organization_id, d.unit_id`)
  return changed.map((d) => ({
    name: 'deviceStatusChange',
    payload: { organizationId: d.organization_id, deviceId: d.id, unitId: d.unit_id, status: 'offline' }
  }))
}

/**
 * Open warning excursions raised CONFIRM_MINUTES ago or earlier, on active units → the lifecycle decides
 * (critical while the unit is still on that side of its range). A reading escalates too; this catches units
 * that went quiet while out of range.
 */
export async function sweepEscalations (tx: Tx, deps: ProcessorDeps, now: Date): Promise<ChangeEvent[]> {
  const confirmedBefore = new Date(now.getTime() - deps.confirmMinutes * 60_000)
  const due = await tx.select({ alert: alerts, unit: units }).from(alerts)
    .innerJoin(units, eq(units.id, alerts.unitId))
    .where(and(
      eq(alerts.type, 'temperature_excursion'),
      ne(alerts.status, 'resolved'),
      eq(alerts.severity, 'warning'),
      lte(alerts.triggeredAt, confirmedBefore),
      eq(units.isActive, true),
      inArray(units.state, ['too_hot', 'too_cold'])
    ))
    .orderBy(asc(alerts.id))
    .for('update', { of: alerts, skipLocked: true })
  const results: LifecycleResult[] = []
  for (const { alert, unit } of due) {
    const lifecycle = createLifecycle(unit, [alert], deps)
    lifecycle.tick(now)
    results.push(lifecycle.result())
  }
  await writeAlerts(tx, results)
  return results.flatMap((r) => r.events)
}
