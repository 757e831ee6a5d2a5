import { sql } from 'drizzle-orm'
import {
  bigint, boolean, index, integer, numeric, pgEnum, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid
} from 'drizzle-orm/pg-core'

export const unitTypeEnum = pgEnum('unit_type', ['fridge', 'freezer', 'walk_in_cooler', 'walk_in_freezer', 'display_case', 'blast_chiller'])
export const unitStateEnum = pgEnum('unit_state', ['normal', 'too_hot', 'too_cold', 'offline'])
export const deviceStatusEnum = pgEnum('device_status', ['online', 'offline'])
export const alertTypeEnum = pgEnum('alert_type', ['temperature_excursion', 'offline'])
export const alertSeverityEnum = pgEnum('alert_severity', ['warning', 'critical'])
export const alertStatusEnum = pgEnum('alert_status', ['active', 'acknowledged', 'resolved'])
export const thresholdEnum = pgEnum('alert_threshold', ['temp_min', 'temp_max'])

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' })
// Temperatures are exact two-decimal numerics so that threshold and hysteresis comparisons are exact.
const temp = (name: string) => numeric(name, { precision: 6, scale: 2, mode: 'number' })

export const organizations = pgTable('organizations', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  slug: text('slug').notNull().unique(),
  createdAt: ts('created_at').notNull().defaultNow()
})

export const sites = pgTable('sites', {
  id: uuid('id').primaryKey().defaultRandom(),
  organizationId: uuid('organization_id').notNull().references(() => organizations.id, { onDelete: 'cascade' }),
  name: text('name').notNull(),
  isActive: boolean('is_active').notNull().default(true),
  createdAt: ts('created_at').notNull().defaultNow()
}, (t) => [index('sites_org_idx').on(t.organizationId)])

export const units = pgTable('units', {
  id: uuid('id').primaryKey().defaultRandom(),
  organizationId: uuid('organization_id').notNull().references(() => organizations.id, { onDelete: 'cascade' }),
  siteId: uuid('site_id').notNull().references(() => sites.id, { onDelete: 'cascade' }),
  name: text('name').notNull(),
  unitType: unitTypeEnum('unit_type').notNull(),
  tempMin: temp('temp_min').notNull(),
  tempMax: temp('temp_max').notNull(),
  state: unitStateEnum('state').notNull().default('normal'),
  lastTemperature: temp('last_temperature'),
  lastReadingAt: ts('last_reading_at'),
  stateChangedAt: ts('state_changed_at').notNull().defaultNow(),
  isActive: boolean('is_active').notNull().default(true),
  createdAt: ts('created_at').notNull().defaultNow()
}, (t) => [
  // Unit counts by state: an index-only scan over one organization's units.
  index('units_org_state_idx').on(t.organizationId, t.state).where(sql`is_active`),
  index('units_site_idx').on(t.siteId)
])

export const devices = pgTable('devices', {
  id: uuid('id').primaryKey().defaultRandom(),
  organizationId: uuid('organization_id').notNull().references(() => organizations.id, { onDelete: 'cascade' }),
  unitId: uuid('unit_id').notNull().references(() => units.id, { onDelete: 'cascade' }),
  deviceEui: text('device_eui').notNull().unique(),
  status: deviceStatusEnum('status').notNull().default('offline'),
  lastSeenAt: ts('last_seen_at'),
  battery: integer('battery'),
  createdAt: ts('created_at').notNull().defaultNow()
}, (t) => [
  index('devices_org_status_idx').on(t.organizationId, t.status),
  index('devices_unit_idx').on(t.unitId)
])

// Partitioned by month on recorded_at (migration 0003, hand-written: drizzle-kit cannot express PARTITION BY), with
// a DEFAULT partition as a safety net. A unique index of a partitioned table must hold the partition key, hence
// the primary key (id, recorded_at). Insert through this parent only: its statement trigger maintains the rollups.
export const sensorReadings = pgTable('sensor_readings', {
  id: bigint('id', { mode: 'number' }).notNull().generatedAlwaysAsIdentity(),
  organizationId: uuid('organization_id').notNull(),
  unitId: uuid('unit_id').notNull(),
  deviceId: uuid('device_id').notNull(),
  temperature: temp('temperature').notNull(),
  humidity: numeric('humidity', { precision: 5, scale: 2, mode: 'number' }),
  recordedAt: ts('recorded_at').notNull(),
  receivedAt: ts('received_at').notNull().defaultNow()
}, (t) => [
  primaryKey({ name: 'sensor_readings_pkey', columns: [t.id, t.recordedAt] }),
  // Idempotent ingestion: one row per (device, recorded_at).
  uniqueIndex('sensor_readings_device_recorded_uq').on(t.deviceId, t.recordedAt)
  // Trends and state catch-up: sensor_readings_unit_recorded_cov (unit_id, recorded_at) INCLUDE (temperature),
  // an index-only scan for one unit's day (migration 0002).
  // Compliance: sensor_readings_org_recorded_cov (organization_id, recorded_at) INCLUDE (unit_id, temperature),
  // created in a custom migration because drizzle-kit cannot express INCLUDE.
])

/**
 * The thresholds each unit had from `valid_from` on: a reading is judged against the row with the greatest
 * valid_from <= its recorded_at. A unit's first row (valid_from = -infinity) is written by a trigger on units
 * (every writer of units gets it); the management service adds one per threshold change.
 */
export const unitThresholds = pgTable('unit_thresholds', {
  unitId: uuid('unit_id').notNull().references(() => units.id, { onDelete: 'cascade' }),
  organizationId: uuid('organization_id').notNull(),
  validFrom: ts('valid_from').notNull(),
  tempMin: temp('temp_min').notNull(),
  tempMax: temp('temp_max').notNull()
}, (t) => [
  primaryKey({ name: 'unit_thresholds_pkey', columns: [t.unitId, t.validFrom] }),
  index('unit_thresholds_org_idx').on(t.organizationId)
])

/**
 * Per unit and bucket (5 minutes, 1 hour, 1 day, aligned on the epoch in UTC): readings, how many were above
 * temp_max or below temp_min of their time (in range = readings − above − below), sum, min and max. Maintained
 * by the statement trigger on sensor_readings in the inserting statement (migration 0003); no foreign keys, like
 * sensor_readings. A fillfactor (50 for 5 minutes, 80 otherwise) keeps room for HOT updates of the counters.
 */
function rollupTable<N extends string> (name: N) {
  return pgTable(name, {
    unitId: uuid('unit_id').notNull(),
    bucket: ts('bucket').notNull(),
    organizationId: uuid('organization_id').notNull(),
    readings: integer('readings').notNull(),
    above: integer('above').notNull(),
    below: integer('below').notNull(),
    tempSum: numeric('temp_sum', { mode: 'number' }).notNull(),
    tempMin: temp('temp_min').notNull(),
    tempMax: temp('temp_max').notNull()
  }, (t) => [
    primaryKey({ name: `${name}_pkey`, columns: [t.unitId, t.bucket] }),
    index(`${name}_org_bucket_idx`).on(t.organizationId, t.bucket)
  ])
}
export const readingRollups5m = rollupTable('reading_rollups_5m')
export const readingRollups1h = rollupTable('reading_rollups_1h')
export const readingRollups1d = rollupTable('reading_rollups_1d')

/** What retention has removed: raw readings (and 5-minute rollups) before `readings`, other rollups before `rollups`. */
export const retentionHorizons = pgTable('retention_horizons', {
  kind: text('kind').primaryKey(),
  horizon: ts('horizon').notNull()
})

export const alerts = pgTable('alerts', {
  id: uuid('id').primaryKey().defaultRandom(),
  organizationId: uuid('organization_id').notNull().references(() => organizations.id, { onDelete: 'cascade' }),
  unitId: uuid('unit_id').notNull().references(() => units.id, { onDelete: 'cascade' }),
  type: alertTypeEnum('type').notNull(),
  severity: alertSeverityEnum('severity').notNull().default('warning'),
  status: alertStatusEnum('status').notNull().default('active'),
  triggerTemperature: temp('trigger_temperature'),
  threshold: thresholdEnum('threshold'),
  triggeredAt: ts('triggered_at').notNull().defaultNow(),
  acknowledgedAt: ts('acknowledged_at'),
  resolvedAt: ts('resolved_at')
}, (t) => [
  // At most one open alert of each type per unit, even under concurrent ingestion.
  uniqueIndex('alerts_open_unit_type_uq').on(t.unitId, t.type).where(sql`status <> 'resolved'`),
  // Alert counts: the organization's open alerts only.
  index('alerts_org_open_idx').on(t.organizationId, t.status, t.severity).where(sql`status <> 'resolved'`),
  index('alerts_org_triggered_idx').on(t.organizationId, t.triggeredAt),
  index('alerts_unit_triggered_idx').on(t.unitId, t.triggeredAt)
])

export const apiKeys = pgTable('api_keys', {
  id: uuid('id').primaryKey().defaultRandom(),
  organizationId: uuid('organization_id').notNull().references(() => organizations.id, { onDelete: 'cascade' }),
  name: text('name').notNull(),
  hash: text('hash').notNull().unique(),
  createdAt: ts('created_at').notNull().defaultNow(),
  revokedAt: ts('revoked_at')
})

export type Unit = typeof units.$inferSelect
export type Device = typeof devices.$inferSelect
export type Alert = typeof alerts.$inferSelect
export type Site = typeof sites.$inferSelect
export type Organization = typeof organizations.$inferSelect
export type UnitState = Unit['state']
export type UnitType = Unit['unitType']
