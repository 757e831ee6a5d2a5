import { sql } from 'drizzle-orm'
import type { Alert, UnitState } from '../../db/schema.js'
import { rows, type Db } from '../../infra/postgres.js'
import type { ChangeEvent } from '../events/types.js'
import { asDateOrNull, asNumberOrNull, iso } from './sql-values.js'

/*
 * The sweeper's set-based transitions, one statement and one transaction each, so a sweep costs the
 * same few queries for ten units or ten thousand. Rows locked by ingestion right now are skipped
 * (SKIP LOCKED): ingestion is about to give them fresh data, and the next sweep sees them anyway.
 */

interface OfflineUnitRow {
  unit_id: string
  organization_id: string
  previous_state: UnitState
  last_temperature: unknown
  last_reading_at: unknown
  alert_id: string | null
}

/** Active units silent since `cutoff` (or never heard from and created before it) → offline + offline alert. */
export async function sweepOfflineUnits (db: Db, now: Date, cutoff: Date): Promise<ChangeEvent[]> {
  const changed = await db.transaction((tx) => rows<OfflineUnitRow>(tx, sql`
    WITH stale AS (
      SELECT id, state AS previous_state FROM units
      WHERE is_active AND state <> 'offline' AND coalesce(last_reading_at, created_at) < ${iso(cutoff)}::timestamptz
      ORDER BY id
      FOR UPDATE SKIP LOCKED
    ), upd AS (
      UPDATE units u SET state = 'offline', state_changed_at = ${iso(now)}::timestamptz
      FROM stale WHERE u.id = stale.id
      RETURNING u.id, u.organization_id, u.last_temperature, u.last_reading_at, stale.previous_state
    ), ins AS (
      INSERT INTO alerts (organization_id, unit_id, type, severity, status, triggered_at)
      SELECT organization_id, id, 'offline', 'warning', 'active', ${iso(now)}::timestamptz FROM upd
      ON CONFLICT (unit_id, type) WHERE status <> 'resolved' DO NOTHING
      RETURNING id, unit_id
    )
    SELECT upd.id AS unit_id, upd.organization_id, upd.previous_state, upd.last_temperature, upd.last_reading_at,
      ins.id AS alert_id
    FROM upd LEFT JOIN ins ON ins.unit_id = upd.id
    ORDER BY upd.organization_id, upd.id`))
  return changed.flatMap((u): ChangeEvent[] => {
    const lastReadingAt = asDateOrNull(u.last_reading_at)
    const events: ChangeEvent[] = [{
      name: 'unitUpdate',
      payload: {
        organizationId: u.organization_id,
        unitId: u.unit_id,
        state: 'offline',
        previousState: u.previous_state,
        lastTemperature: asNumberOrNull(u.last_temperature),
        lastReadingAt: lastReadingAt?.toISOString() ?? null
      }
    }]
    if (u.alert_id) {
      events.push({
        name: 'alertCreated',
        payload: { organizationId: u.organization_id, alertId: u.alert_id, unitId: u.unit_id, type: 'offline', severity: 'warning', status: 'active' }
      })
    }
    return events
  })
}

interface OfflineDeviceRow { id: string, organization_id: string, unit_id: string }

/** Online devices not seen since `cutoff` → offline. */
export async function sweepOfflineDevices (db: Db, cutoff: Date): Promise<ChangeEvent[]> {
  const changed = await db.transaction((tx) => rows<OfflineDeviceRow>(tx, sql`
    WITH stale AS (
      SELECT id FROM devices
      WHERE status = 'online' AND (last_seen_at IS NULL OR last_seen_at < ${iso(cutoff)}::timestamptz)
      ORDER BY id
      FOR UPDATE SKIP LOCKED
    )
    UPDATE devices d SET status = 'offline' FROM stale WHERE d.id = stale.id
    RETURNING d.id, d.organization_id, d.unit_id`))
  return changed.map((d) => ({
    name: 'deviceStatusChange',
    payload: { organizationId: d.organization_id, deviceId: d.id, unitId: d.unit_id, status: 'offline' }
  }))
}

interface EscalatedRow { id: string, organization_id: string, unit_id: string, status: Alert['status'] }

/**
 * Open warning excursions raised at or before `confirmedBefore` whose unit is still on the same side
 * of its range → critical. A reading escalates too; this catches units that went quiet while out of range.
 */
export async function sweepEscalations (db: Db, confirmedBefore: Date): Promise<ChangeEvent[]> {
  const changed = await db.transaction((tx) => rows<EscalatedRow>(tx, sql`
    WITH due AS (
      SELECT a.id FROM alerts a JOIN units u ON u.id = a.unit_id
      WHERE a.type = 'temperature_excursion' AND a.status <> 'resolved' AND a.severity = 'warning'
        AND a.triggered_at <= ${iso(confirmedBefore)}::timestamptz
        AND u.is_active
        AND ((u.state = 'too_hot' AND a.threshold = 'temp_max') OR (u.state = 'too_cold' AND a.threshold = 'temp_min'))
      ORDER BY a.id
      FOR UPDATE OF a SKIP LOCKED
    )
    UPDATE alerts a SET severity = 'critical' FROM due WHERE a.id = due.id AND a.severity = 'warning'
    RETURNING a.id, a.organization_id, a.unit_id, a.status`))
  return changed.map((a) => ({
    name: 'alertEscalated',
    payload: { organizationId: a.organization_id, alertId: a.id, unitId: a.unit_id, type: 'temperature_excursion', severity: 'critical', status: a.status }
  }))
}
