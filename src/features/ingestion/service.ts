import { asc, inArray, sql } from 'drizzle-orm'
import { devices, sensorReadings } from '../../db/schema.js'
import { AppError, ValidationError } from '../../errors.js'
import { rows as rowsOf, type Db, type Tx } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'
import type { ReadingInput } from './schemas.js'

/** How far ahead of the server clock a device's own clock may run. */
const MAX_CLOCK_SKEW_MS = 5 * 60_000

export interface StoreResult {
  /** Readings newly stored. */
  accepted: number
  /** Readings already stored, or repeated within the batch. */
  duplicates: number
  /** The units the batch's devices belong to: what monitoring must process next. */
  unitIds: string[]
}

interface ResolvedDevice { id: string, unitId: string, organizationId: string }

/**
 * Validates and stores reading batches. Storing is idempotent; processing them is monitoring's job. The rollups
 * are maintained by the insert statement itself (its trigger, migration 0003).
 */
export function createIngestionService (opts: {
  db: Db
  clock: Clock
  /** Creates the partitions of months that have none yet, before the insert (src/features/maintenance). */
  ensurePartitions: (times: Date[]) => Promise<void>
  /** True when every month of these instants already has its partition (nothing to create first). */
  partitionsKnown: (times: Date[]) => boolean
}) {
  const { db, clock, ensurePartitions, partitionsKnown } = opts

  function parseTimes (readings: ReadingInput[]): Date[] {
    const latest = clock.now().getTime() + MAX_CLOCK_SKEW_MS
    return readings.map((r, i) => {
      const at = new Date(r.recordedAt)
      if (Number.isNaN(at.getTime())) throw new ValidationError(`readings/${i}/recordedAt: not a valid date`)
      if (at.getTime() > latest) throw new ValidationError(`readings/${i}/recordedAt: more than 5 minutes in the future`)
      return at
    })
  }

  async function resolveDevices (orgId: string, readings: ReadingInput[]): Promise<Map<string, ResolvedDevice>> {
    const euis = [...new Set(readings.map((r) => r.deviceEui))]
    const found = await db.select({ id: devices.id, unitId: devices.unitId, organizationId: devices.organizationId, eui: devices.deviceEui })
      .from(devices).where(inArray(devices.deviceEui, euis))
    // Another organization's device is reported exactly like a missing one (here and in insertResolved): the key
    // learns nothing about it.
    const byEui = new Map(found.filter((d) => d.organizationId === orgId).map((d) => [d.eui, d]))
    const unknown = euis.filter((e) => !byEui.has(e))
    if (unknown.length > 0) throw unknownDevices(unknown)
    return byEui
  }

  return {
    /**
     * Stores a batch all or nothing: every reading is checked first (clock skew, devices of this
     * organization), then one multi-row INSERT … ON CONFLICT DO NOTHING keeps one row per
     * (device, recordedAt). Times are kept to the millisecond, the precision state processing compares at.
     */
    async storeReadings (orgId: string, readings: ReadingInput[]): Promise<StoreResult> {
      const times = parseTimes(readings)
      const receivedAt = clock.now()
      // The usual batch (its months' partitions exist, no battery levels): one statement and one round trip,
      // atomic on its own (its rollup trigger included), which resolves the devices and inserts only if all were.
      if (partitionsKnown(times) && readings.every((r) => r.battery === undefined)) {
        const [res] = await rowsOf<{ accepted: number, unknown: string[] | null, unit_ids: string[] | null }>(db, insertResolved(orgId, readings, times, receivedAt))
        const unknown = [...new Set(res?.unknown ?? [])]
        if (unknown.length > 0) throw unknownDevices(unknown)
        const stored = Number(res?.accepted ?? 0)
        return { accepted: stored, duplicates: readings.length - stored, unitIds: res?.unit_ids ?? [] }
      }
      // Otherwise the devices are resolved first, so that a bad batch creates no partition either.
      const byEui = await resolveDevices(orgId, readings)
      const rows = readings.map((r, i) => {
        const device = byEui.get(r.deviceEui)!
        return { organizationId: orgId, unitId: device.unitId, deviceId: device.id, temperature: r.temperature, humidity: r.humidity ?? null, recordedAt: times[i]!, receivedAt }
      })
      // In key order: two batches repeating each other's readings wait for each other instead of deadlocking.
      rows.sort((x, y) => x.deviceId < y.deviceId ? -1 : x.deviceId > y.deviceId ? 1 : x.recordedAt.getTime() - y.recordedAt.getTime())
      await ensurePartitions(times)
      const insert = (q: Db | Tx) => q.insert(sensorReadings).values(rows)
        .onConflictDoNothing({ target: [sensorReadings.deviceId, sensorReadings.recordedAt] })
        .returning({ id: sensorReadings.id })
      const stored = readings.some((r) => r.battery !== undefined)
        ? await db.transaction(async (tx) => {
          const inserted = await insert(tx)
          await updateBatteries(tx, readings, times, byEui)
          return inserted.length
        })
        : (await insert(db)).length
      return { accepted: stored, duplicates: readings.length - stored, unitIds: [...new Set(rows.map((r) => r.unitId))] }
    }
  }
}
export type IngestionService = ReturnType<typeof createIngestionService>

/** The 400 for devices this organization does not have. */
function unknownDevices (euis: string[]): AppError {
  const shown = euis.slice(0, 5).join(', ') + (euis.length > 5 ? ` and ${euis.length - 5} more` : '')
  return new AppError('UNKNOWN_DEVICE', `unknown device: ${shown}`, 400)
}

/**
 * A batch without battery levels in one statement: each reading's device looked up in this organization; when any
 * is not found nothing is inserted and `unknown` names them (in the batch's order); otherwise the rows are inserted
 * in key order (two batches repeating each other's readings wait for each other instead of deadlocking), one per
 * (device, recordedAt): of a reading repeated within the batch the first one is kept, as the key order is completed
 * by the batch's order. `unit_ids` names the units to evaluate.
 */
function insertResolved (orgId: string, readings: ReadingInput[], times: Date[], receivedAt: Date) {
  const values = sql.join(readings.map((r, i) =>
    sql`(${i}::int, ${r.deviceEui}::text, ${r.temperature}::numeric, ${r.humidity ?? null}::numeric, ${times[i]!.toISOString()}::timestamptz)`), sql`, `)
  return sql`
    WITH v(i, eui, temperature, humidity, recorded_at) AS (VALUES ${values}),
    resolved AS (
      SELECT v.*, d.id AS device_id, d.unit_id
      FROM v LEFT JOIN devices d ON d.device_eui = v.eui AND d.organization_id = ${orgId}
    ), ins AS (
      INSERT INTO sensor_readings (organization_id, unit_id, device_id, temperature, humidity, recorded_at, received_at)
      SELECT ${orgId}::uuid, unit_id, device_id, temperature, humidity, recorded_at, ${receivedAt.toISOString()}::timestamptz
      FROM resolved
      WHERE NOT EXISTS (SELECT 1 FROM resolved WHERE device_id IS NULL)
      ORDER BY device_id, recorded_at, i
      ON CONFLICT (device_id, recorded_at) DO NOTHING
      RETURNING 1
    )
    SELECT
      (SELECT count(*)::int FROM ins) AS accepted,
      (SELECT json_agg(eui ORDER BY i) FROM resolved WHERE device_id IS NULL) AS unknown,
      (SELECT json_agg(DISTINCT unit_id) FROM resolved) AS unit_ids`
}

/**
 * Battery levels are not part of sensor_readings, so they are kept here: each device's most recent
 * reported level, unless the device has already been seen later than that reading.
 */
async function updateBatteries (tx: Tx, readings: ReadingInput[], times: Date[], byEui: Map<string, ResolvedDevice>): Promise<void> {
  const newest = new Map<string, { battery: number, at: Date }>()
  readings.forEach((r, i) => {
    if (r.battery === undefined) return
    const id = byEui.get(r.deviceEui)!.id
    const at = times[i]!
    const seen = newest.get(id)
    if (!seen || at > seen.at) newest.set(id, { battery: r.battery, at })
  })
  if (newest.size === 0) return
  // Lock in id order first: two batches touching the same devices must not deadlock each other.
  await tx.select({ id: devices.id }).from(devices).where(inArray(devices.id, [...newest.keys()])).orderBy(asc(devices.id)).for('update')
  const values = sql.join([...newest].map(([id, v]) =>
    sql`(${id}::uuid, ${v.battery}::int, ${v.at.toISOString()}::timestamptz)`), sql`, `)
  await tx.execute(sql`
    UPDATE devices d SET battery = v.battery
    FROM (VALUES ${values}) AS v(id, battery, at)
    WHERE d.id = v.id AND (d.last_seen_at IS NULL OR d.last_seen_at <= v.at)`)
}
