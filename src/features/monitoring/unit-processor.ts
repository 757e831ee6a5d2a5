import { and, asc, eq, inArray, ne, sql, type SQL } from 'drizzle-orm'
import { alerts, units, type Alert, type Unit } from '../../db/schema.js'
import type { BatchTx, Db, DbOrTx, Tx } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'
import type { ChangeEvent } from '../changes/events.js'
import { createLifecycle, type LifecycleResult } from './lifecycle.js'
import { asDate, fromJsonRow, iso } from './sql-values.js'

export interface ProcessorDeps {
  clock: Clock
  offlineAfterMinutes: number
  confirmMinutes: number
}

/**
 * Applies every stored reading newer than the unit's last one, in recordedAt order, in the caller's batched
 * transaction with the unit row locked: two round trips (the lock and the inputs with the BEGIN; the writes with the
 * COMMIT). Idempotent: run it twice, or after a crash, and it only catches up. Older (out-of-order) readings stay
 * stored but never move the state backwards. Returns the events to publish once the transaction has committed
 * (null when the organization has no such unit: then nothing was changed), and the writes to send with the COMMIT.
 */
export async function processUnit (tx: BatchTx, db: Db, deps: ProcessorDeps, orgId: string, unitId: string): Promise<{ events: ChangeEvent[] | null, beforeCommit: SQL[] }> {
  // The inputs statement takes its snapshot after the lock statement before it was granted the lock, so it sees
  // every reading committed before that; each of its parts is limited to this organization's unit, so when the
  // lock found nothing (another organization's unit, or none) it reads and moves nothing (the readings' lower bound
  // is then NULL, which no reading passes).
  const [locked, inputs] = await tx.send([
    sql`SELECT row_to_json(u) AS unit FROM units u WHERE u.id = ${unitId} AND u.organization_id = ${orgId} FOR UPDATE`,
    unitInputs(deps, orgId, unitId)
  ])
  const json = locked?.[0]?.unit as Record<string, unknown> | undefined
  if (!json) return { events: null, beforeCommit: [] }
  const unit = fromJsonRow(units, json)
  const { readings, deviceEvents, openAlerts } = parseInputs(inputs?.[0])
  const last = readings.at(-1)
  if (!last) return { events: deviceEvents, beforeCommit: [] }

  // An inactive unit keeps its last reading (so re-activation can re-evaluate it) but has no state or alerts.
  let result: LifecycleResult | null = null
  if (unit.isActive) {
    const lifecycle = createLifecycle(unit, openAlerts, deps)
    for (const r of readings) lifecycle.observe(r.temperature, r.recordedAt)
    result = lifecycle.result()
  }
  const update = db.update(units).set({
    lastTemperature: last.temperature,
    lastReadingAt: last.recordedAt,
    ...(result ? { state: result.state, stateChangedAt: result.stateChangedAt } : {})
  }).where(eq(units.id, unitId)).getSQL()
  if (!result) return { events: deviceEvents, beforeCommit: [update] }
  return {
    events: [
      ...deviceEvents,
      ...unitUpdate({ ...unit, lastTemperature: last.temperature, lastReadingAt: last.recordedAt }, result),
      ...result.events
    ],
    beforeCommit: [update, ...alertWrites(db, [result])]
  }
}

interface DeviceRow { id: string, unit_id: string, organization_id: string, status: 'online' | 'offline', previous_status: 'online' | 'offline' }
interface InputsRow { readings: Array<[number | string, string]> | null, devices: DeviceRow[] | null, alerts: Array<Record<string, unknown>> | null }

/**
 * What evaluating a locked unit needs, in one statement: the readings newer than the unit's last one, in order; its
 * devices moved to their newest stored reading (locked, in id order) with those whose status changed; its open
 * alerts, locked in id order. A device comes online only when its newest reading is recent (a back-filled old one
 * would just be swept offline again); the (device_id, recorded_at) index answers max() at once. `seen` is
 * MATERIALIZED: inlined, its max() over every partition was planned four times (once per use in `moved`) and run
 * twice, which made planning most of the statement's cost (1.3 of 1.55 ms a call in W1, pg_stat_statements).
 */
function unitInputs (deps: ProcessorDeps, orgId: string, unitId: string): SQL {
  const cutoff = new Date(deps.clock.now().getTime() - deps.offlineAfterMinutes * 60_000)
  return sql`
    WITH prev AS (
      SELECT id, status FROM devices WHERE unit_id = ${unitId} AND organization_id = ${orgId} ORDER BY id FOR UPDATE
    ), seen AS MATERIALIZED (
      SELECT prev.id, prev.status AS previous_status,
        (SELECT max(r.recorded_at) FROM sensor_readings r WHERE r.device_id = prev.id) AS newest
      FROM prev
    ), moved AS (
      UPDATE devices d SET
        last_seen_at = seen.newest,
        status = CASE WHEN seen.newest >= ${iso(cutoff)}::timestamptz THEN 'online'::device_status ELSE d.status END
      FROM seen
      WHERE d.id = seen.id AND seen.newest IS NOT NULL AND (d.last_seen_at IS NULL OR seen.newest > d.last_seen_at)
      RETURNING d.id, d.unit_id, d.organization_id, d.status, seen.previous_status
    ), open AS (
      SELECT * FROM alerts WHERE unit_id = ${unitId} AND organization_id = ${orgId} AND status <> 'resolved' ORDER BY id FOR UPDATE
    )
    SELECT
      (SELECT json_agg(json_build_array(r.temperature, r.recorded_at) ORDER BY r.recorded_at, r.id)
        FROM sensor_readings r
        WHERE r.unit_id = ${unitId} AND r.recorded_at > (
          SELECT coalesce(u.last_reading_at, '-infinity'::timestamptz) FROM units u WHERE u.id = ${unitId} AND u.organization_id = ${orgId})) AS readings,
      (SELECT json_agg(moved) FROM moved) AS devices,
      (SELECT json_agg(open ORDER BY open.id) FROM open) AS alerts`
}

function parseInputs (row: Record<string, unknown> | undefined): { readings: Array<{ temperature: number, recordedAt: Date }>, deviceEvents: ChangeEvent[], openAlerts: Alert[] } {
  const r = (row ?? {}) as Partial<InputsRow>
  return {
    readings: (r.readings ?? []).map(([t, at]) => ({ temperature: Number(t), recordedAt: asDate(at) })),
    deviceEvents: (r.devices ?? [])
      .filter((d) => d.status !== d.previous_status)
      .map((d) => ({ name: 'deviceStatusChange', payload: { organizationId: d.organization_id, deviceId: d.id, unitId: d.unit_id, status: d.status } })),
    openAlerts: (r.alerts ?? []).map((a) => fromJsonRow(alerts, a))
  }
}

/**
 * Re-evaluates a unit from its last temperature after its thresholds or isActive changed, inside the caller's
 * transaction, through the same lifecycle as a reading (hysteresis included, so a change that moves no
 * threshold changes nothing). Deactivating a unit resolves its open alerts. An offline or never-reporting
 * unit waits for its next reading.
 */
export async function reevaluate (tx: Tx, deps: ProcessorDeps, orgId: string, unitId: string): Promise<ChangeEvent[]> {
  const unit = await lockUnit(tx, orgId, unitId)
  if (!unit) return []
  const now = deps.clock.now()
  const lifecycle = createLifecycle(unit, await lockOpenAlerts(tx, [unitId]), deps)
  if (!unit.isActive) lifecycle.resolveAll(now)
  else if (unit.state !== 'offline' && unit.lastTemperature !== null) lifecycle.observe(unit.lastTemperature, now)
  const result = lifecycle.result()
  if (result.state !== unit.state) {
    await tx.update(units).set({ state: result.state, stateChangedAt: result.stateChangedAt }).where(eq(units.id, unitId))
  }
  await writeAlerts(tx, [result])
  return [...unitUpdate(unit, result), ...result.events]
}

async function lockUnit (tx: Tx, orgId: string, unitId: string): Promise<Unit | undefined> {
  const [unit] = await tx.select().from(units)
    .where(and(eq(units.id, unitId), eq(units.organizationId, orgId)))
    .for('update')
  return unit
}

/** The open alerts of these units, locked (in id order, so that concurrent lockers never deadlock). */
export async function lockOpenAlerts (tx: Tx, unitIds: string[]): Promise<Alert[]> {
  if (unitIds.length === 0) return []
  return tx.select().from(alerts)
    .where(and(inArray(alerts.unitId, unitIds), ne(alerts.status, 'resolved')))
    .orderBy(asc(alerts.id))
    .for('update')
}

/**
 * Writes what lifecycles decided, set-based: updates before inserts (a resolved alert must leave the partial
 * unique index before its successor enters).
 */
export async function writeAlerts (tx: Tx, results: LifecycleResult[]): Promise<void> {
  for (const statement of alertWrites(tx, results)) await tx.execute(statement)
}

/** writeAlerts's statements, in order (built on `db`, sent by the caller). */
function alertWrites (db: DbOrTx, results: LifecycleResult[]): SQL[] {
  const updated = results.flatMap((r) => r.updated)
  const inserted = results.flatMap((r) => r.inserted)
  const out: SQL[] = []
  if (updated.length > 0) {
    const values = sql.join(updated.map((a) =>
      sql`(${a.id}::uuid, ${a.severity}::alert_severity, ${a.status}::alert_status, ${a.resolvedAt ? iso(a.resolvedAt) : null}::timestamptz)`), sql`, `)
    out.push(sql`
      UPDATE alerts a SET severity = v.severity, status = v.status, resolved_at = v.resolved_at
      FROM (VALUES ${values}) AS v(id, severity, status, resolved_at)
      WHERE a.id = v.id`)
  }
  for (let i = 0; i < inserted.length; i += 1000) out.push(db.insert(alerts).values(inserted.slice(i, i + 1000)).getSQL())
  return out
}

/**
 * Only a state change emits unitUpdate (one per run, previous → final state): a new temperature
 * alone would multiply the event volume by the reading rate, and the dashboard's cached aggregates
 * depend on the state, not on each temperature.
 */
export function unitUpdate (unit: Pick<Unit, 'id' | 'organizationId' | 'lastTemperature' | 'lastReadingAt'>, result: LifecycleResult): ChangeEvent[] {
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
