import { randomBytes } from 'node:crypto'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { sql } from 'drizzle-orm'
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import { devices, organizations, sensorReadings, sites, units } from '../../src/db/schema.js'
import { createDatabase, migrationsFolder, rows, type Database, type Db } from '../../src/infra/postgres.js'
import { listPartitions } from '../../src/features/maintenance/partitions.js'
import { adminQuery, databaseUrl } from '../helpers/db.js'
import { backends } from '../helpers/fixture.js'
import { entries, expectedRollups, storedRollups, type StoredReading } from '../helpers/rollups.js'

// Migration 0003 converts a populated, pre-partitioning sensor_readings into a partitioned table without losing or
// changing a row: the old table becomes the partition sensor_readings_legacy.

const dirs: string[] = []
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }) })

/** A copy of the migrations folder that stops after `lastTag`. */
function migrationsUpTo (lastTag: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'cb-migrations-'))
  dirs.push(dir)
  cpSync(migrationsFolder, dir, { recursive: true })
  const journalPath = path.join(dir, 'meta/_journal.json')
  const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: Array<{ tag: string }> }
  const last = journal.entries.findIndex((e) => e.tag === lastTag)
  expect(last).toBeGreaterThan(-1)
  journal.entries = journal.entries.slice(0, last + 1)
  writeFileSync(journalPath, JSON.stringify(journal))
  return dir
}

const checksum = async (db: Db) => (await rows<{ n: number, sum: string, max_id: number }>(db, sql`
  select count(*)::int as n, max(id)::float8 as max_id,
    md5(string_agg(concat_ws('|', id, organization_id, unit_id, device_id, temperature, humidity,
      (extract(epoch from recorded_at) * 1000)::bigint, (extract(epoch from received_at) * 1000)::bigint), ',' order by id)) as sum
  from sensor_readings`))[0]!

async function populate (db: Db): Promise<{ orgId: string, readings: StoredReading[], thresholds: Map<string, { tempMin: number, tempMax: number }> }> {
  const [org] = await db.insert(organizations).values({ name: 'Legacy', slug: `legacy-${randomBytes(3).toString('hex')}` }).returning()
  const [site] = await db.insert(sites).values({ organizationId: org!.id, name: 'Site' }).returning()
  const unitRows = await db.insert(units).values([
    { organizationId: org!.id, siteId: site!.id, name: 'Fridge', unitType: 'fridge' as const, tempMin: 2, tempMax: 8 },
    { organizationId: org!.id, siteId: site!.id, name: 'Freezer', unitType: 'freezer' as const, tempMin: -25, tempMax: -15 }
  ]).returning()
  const deviceRows = await db.insert(devices).values(unitRows.map((u, i) => ({ organizationId: org!.id, unitId: u.id, deviceEui: `legacy-${randomBytes(4).toString('hex')}-${i}` }))).returning()
  const readings: StoredReading[] = []
  // Four months up to now (the current month included), every 67 minutes, with a humidity now and then.
  const start = Date.now() - 110 * 24 * 3600_000
  for (let t = start, k = 0; t < Date.now(); t += 67 * 60_000, k++) {
    for (const [i, u] of unitRows.entries()) {
      const base = i === 0 ? 5 : -20
      readings.push({ unitId: u.id, deviceId: deviceRows[i]!.id, temperature: Math.round((base + 4.3 * Math.sin(k / 7) + (k % 5) * 0.37) * 100) / 100, recordedAt: new Date(t) })
    }
  }
  for (let i = 0; i < readings.length; i += 1000) {
    await db.insert(sensorReadings).values(readings.slice(i, i + 1000).map((r, j) => ({ organizationId: org!.id, ...r, humidity: j % 3 === 0 ? 40 + (j % 20) : null })))
  }
  return { orgId: org!.id, readings, thresholds: new Map(unitRows.map((u) => [u.id, { tempMin: u.tempMin, tempMax: u.tempMax }])) }
}

describe.each(backends)('migration 0003 on a populated database ($name)', ({ name }) => {
  it('keeps every row (count and checksum), makes the old table a partition, rolls the readings up', async () => {
    const partial = migrationsUpTo('0002_trend_covering_index')
    let database: Database
    let drop = async () => {}
    if (name === 'postgres') {
      const dbName = `cb_t_mig_${randomBytes(5).toString('hex')}`
      await adminQuery(`CREATE DATABASE ${dbName}`)
      database = await createDatabase({ databaseUrl: databaseUrl(dbName), dataDir: '.coldboard-test' })
      drop = async () => { await database.close(); await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`) }
      await migratePg(database.db as never, { migrationsFolder: partial })
    } else {
      database = await createDatabase({ dataDir: '.coldboard-test', inMemory: true })
      drop = () => database.close()
      await migratePglite(database.db as never, { migrationsFolder: partial })
    }
    try {
      const db = database.db
      const { orgId, readings, thresholds } = await populate(db)
      const before = await checksum(db)
      expect(before.n).toBe(readings.length)

      await database.migrate()

      expect(await checksum(db)).toEqual(before)
      const parts = await listPartitions(db)
      const legacy = parts.find((p) => p.name === 'sensor_readings_legacy')!
      expect(legacy).toMatchObject({ from: null, isDefault: false })
      expect(legacy.to!).toBeGreaterThan(Math.max(...readings.map((r) => r.recordedAt.getTime())))
      expect(parts.some((p) => p.isDefault)).toBe(true)
      expect(parts.filter((p) => !p.isDefault && p.name !== 'sensor_readings_legacy').map((p) => p.from)).toContain(legacy.to)

      const history = new Map([...thresholds].map(([id, t]) => [id, [{ validFrom: -Infinity, ...t }]]))
      for (const width of ['5m', '1h', '1d'] as const) {
        expect(entries(await storedRollups(db, orgId, width)), width).toEqual(entries(expectedRollups(readings, history, width)))
      }

      // Still one row per (device, recorded_at), ids continue after the old ones, new readings are rolled up.
      const old = readings[10]!
      const dup = await db.insert(sensorReadings).values({ organizationId: orgId, ...old, temperature: 99 })
        .onConflictDoNothing({ target: [sensorReadings.deviceId, sensorReadings.recordedAt] }).returning({ id: sensorReadings.id })
      expect(dup).toEqual([])
      const fresh = { ...old, recordedAt: new Date(legacy.to! + 3600_000), temperature: 30 }
      const [added] = await db.insert(sensorReadings).values({ organizationId: orgId, ...fresh }).returning({ id: sensorReadings.id })
      expect(added!.id).toBeGreaterThan(before.max_id)
      expect(entries(await storedRollups(db, orgId, '1d'))).toEqual(entries(expectedRollups([...readings, fresh], history, '1d')))
    } finally {
      await drop()
    }
  })
})
