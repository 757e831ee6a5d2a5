import { and, asc, eq, gt, ne, sql } from 'drizzle-orm'
import { alerts, sensorReadings, units, type Unit } from '../../db/schema.js'
import { rows, type Db, type Tx } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'
import type { ChangeEvent } from '../events/types.js'
import { createLifecycle, type LifecycleResult } from './lifecycle.js'
import { iso } from './sql-values.js'

export interface ProcessorDeps {
  db: Db
  clock: Clock
  offlineAfterMinutes: number
  confirmMinutes: number
}

/**
 * Applies every stored reading newer than the unit's last one, in recordedAt order, in one
 * transaction with the unit row locked. Idempotent: run it twice, or after a crash, and it only
 * catches up. Older (out-of-order) readings stay stored but never move the state backwards.
 * Returns the events to publish once the transaction has committed.
 */
export async function processUnit (deps: ProcessorDeps, orgId: string, unitId: string): Promise<ChangeEvent[]> {
  return deps.db.transaction(async (tx) => {
    const unit = await lockUnit(tx, orgId, unitId)
    if (!unit) return []
    const readings = await tx.select({ temperature: sensorReadings.temperature, recordedAt: sensorReadings.recordedAt })
      .from(sensorReadings)
      .where(and(
        eq(sensorReadings.unitId, unitId),
        unit.lastReadingAt ? gt(sensorReadings.recordedAt, unit.lastReadingAt) : undefined
      ))
      .orderBy(asc(sensorReadings.recordedAt), asc(sensorReadings.id))
    const deviceEvents = await refreshDevices(tx, deps, unit)
    const last = readings.at(-1)
    if (!last) return deviceEvents

    // An inactive unit keeps its last reading (so re-activation can re-evaluate it) but has no state or alerts.
    let result: LifecycleResult | null = null
    if (unit.isActive) {
      const lifecycle = createLifecycle(unit, await lockOpenAlerts(tx, unitId), deps)
      for (const r of readings) lifecycle.observe(r.temperature, r.recordedAt)
      result = lifecycle.result()
    }
    await tx.update(units).set({
      lastTemperature: last.temperature,
      lastReadingAt: last.recordedAt,
      ...(result ? { state: result.state, stateChangedAt: result.stateChangedAt } : {})
    }).where(eq(units.id, unitId))
    if (!result) return deviceEvents
    await writeAlerts(tx, result)
    return [
      ...deviceEvents,
      ...unitUpdate({ ...unit, lastTemperature: last.temperature, lastReadingAt: last.recordedAt }, result),
      ...result.events
    ]
  })
}

/**
 * Re-evaluates a unit from its last temperature after its thresholds or isActive changed, through the
 * same lifecycle as a reading (hysteresis included, so a change that moves no threshold changes
 * nothing). Deactivating a unit resolves its open alerts. An offline or never-reporting unit waits
 * for its next reading.
 */
export async function reevaluate (deps: ProcessorDeps, orgId: string, unitId: string): Promise<ChangeEvent[]> {
  return deps.db.transaction(async (tx) => {
    const unit = await lockUnit(tx, orgId, unitId)
    if (!unit) return []
    const now = deps.clock.now()
    const lifecycle = createLifecycle(unit, await lockOpenAlerts(tx, unitId), deps)
    if (!unit.isActive) lifecycle.resolveAll(now)
    else if (unit.state !== 'offline' && unit.lastTemperature !== null) lifecycle.observe(unit.lastTemperature, now)
    const result = lifecycle.result()
    if (result.state !== unit.state) {
      await tx.update(units).set({ state: result.state, stateChangedAt: result.stateChangedAt }).where(eq(units.id, unitId))
    }
    await writeAlerts(tx, result)
    return [...unitUpdate(unit, result), ...result.events]
  })
}

async function lockUnit (tx: Tx, orgId: string, unitId: string): Promise<Unit | undefined> {
  const [unit] = await tx.select().from(units)
    .where(and(eq(units.id, unitId), eq(units.organizationId, orgId)))
    .for('update')
  return unit
}

async function lockOpenAlerts (tx: Tx, unitId: string) {
  return tx.select().from(alerts)
    .where(and(eq(alerts.unitId, unitId), ne(alerts.status, 'resolved')))
    .for('update')
}

/** Updates before inserts: a resolved alert must leave the partial unique index before its successor enters. */
async function writeAlerts (tx: Tx, result: LifecycleResult): Promise<void> {
  for (const a of result.updated) {
    await tx.update(alerts).set({ severity: a.severity, status: a.status, resolvedAt: a.resolvedAt }).where(eq(alerts.id, a.id))
  }
  if (result.inserted.length > 0) await tx.insert(alerts).values(result.inserted)
}

/**
 * Only a state change emits unitUpdate (one per run, previous → final state): a new temperature
 * alone would multiply the event volume by the reading rate, and the dashboard's cached aggregates
 * depend on the state, not on each temperature.
 */
function unitUpdate (unit: Pick<Unit, 'id' | 'organizationId' | 'lastTemperature' | 'lastReadingAt'>, result: LifecycleResult): ChangeEvent[] {
  if (result.state === result.previousState) return []
  return [{
    name: 'unitUpdate',
    payload: {
      organizationId: unit.organizationId,
      unitId: unit.id,
      state: result.state,
      previousState: result.previousState,
      lastTemperature: unit.lastTemperature,
      lastReadingAt: unit.lastReadingAt?.toISOString() ?? null
    }
  }]
}

interface DeviceRow { id: string, unit_id: string, organization_id: string, status: 'online' | 'offline', previous_status: 'online' | 'offline' }

/**
 * Moves each of the unit's devices to its newest stored reading (any order of arrival: the
 * (device_id, recorded_at) index answers max() at once). A device comes online only when that
 * reading is recent; a back-filled old one would just be swept offline again.
 */
async function refreshDevices (tx: Tx, deps: ProcessorDeps, unit: Unit): Promise<ChangeEvent[]> {
  const cutoff = new Date(deps.clock.now().getTime() - deps.offlineAfterMinutes * 60_000)
  const changed = await rows<DeviceRow>(tx, sql`
    WITH prev AS (
      SELECT id, status FROM devices WHERE unit_id = ${unit.id} ORDER BY id FOR UPDATE
    ), seen AS (
      SELECT prev.id, prev.status AS previous_status,
        (SELECT max(r.recorded_at) FROM sensor_readings r WHERE r.device_id = prev.id) AS newest
      FROM prev
    )
    UPDATE devices d SET
      last_seen_at = seen.newest,
      status = CASE WHEN seen.newest >= ${iso(cutoff)}::timestamptz THEN 'online'::device_status ELSE d.status END
    FROM seen
    WHERE d.id = seen.id AND seen.newest IS NOT NULL AND (d.last_seen_at IS NULL OR seen.newest > d.last_seen_at)
    RETURNING d.id, d.unit_id, d.organization_id, d.status, seen.previous_status`)
  return changed
    .filter((d) => d.status !== d.previous_status)
    .map((d) => ({ name: 'deviceStatusChange', payload: { organizationId: d.organization_id, deviceId: d.id, unitId: d.unit_id, status: d.status } }))
}
