import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sql } from 'drizzle-orm'
import { rows, type Database } from '../../src/infra/postgres.js'
import { manualClock } from '../../src/lib/clock.js'
import { seedDataset, type SeedResult } from '../../src/tools/dataset.js'
import { backends, disposeDatabase } from '../helpers/db.js'

const thresholds: Record<string, [number, number]> = {
  fridge: [2, 8],
  freezer: [-25, -15],
  walk_in_cooler: [1, 5],
  walk_in_freezer: [-25, -18],
  display_case: [0, 5],
  blast_chiller: [-40, 3]
}

interface UnitRow {
  id: string
  organization_id: string
  site_id: string
  name: string
  unit_type: string
  temp_min: string
  temp_max: string
  state: string
  last_temperature: string | null
  last_reading_at: Date | string | null
  state_changed_at: Date | string
  device_status: string
  device_last_seen: Date | string | null
}
interface ReadingRow { unit_id: string, temperature: string, recorded_at: Date | string }
interface AlertRow { unit_id: string, type: string, severity: string, status: string, threshold: string | null, triggered_at: Date | string, resolved_at: Date | string | null }

const MIN = 60_000
/** drizzle's node-postgres returns raw timestamps as strings, PGlite as Dates. */
const ms = (v: Date | string | null): number => v === null ? NaN : new Date(v).getTime()
const opts = { orgs: 2, units: 5, hours: 2, intervalSeconds: 60, seed: 42, offlineAfterMinutes: 15, confirmMinutes: 10 }
const now = new Date('2026-03-10T14:30:17.456Z')
const end = Math.floor(now.getTime() / 1000) * 1000
const perUnit = (opts.hours * 3600) / opts.intervalSeconds
const start = end - (perUnit - 1) * opts.intervalSeconds * 1000

/** SPEC §2 recomputed independently: the state after each reading, the start of the current excursion, offline by time. */
function expectedState (temps: number[], min: number, max: number, lastAt: number | null) {
  let state = 'normal'
  let excursionSince: number | null = null
  temps.forEach((t, i) => {
    const at = start + i * opts.intervalSeconds * 1000
    if (t > max) state = 'too_hot'
    else if (t < min) state = 'too_cold'
    else if (state === 'too_hot' && t > max - 0.5) state = 'too_hot'
    else if (state === 'too_cold' && t < min + 0.5) state = 'too_cold'
    else state = 'normal'
    if (state === 'normal') excursionSince = null
    else excursionSince ??= at
  })
  const offline = lastAt === null || end - lastAt >= opts.offlineAfterMinutes * MIN
  return { state: offline ? 'offline' : state, excursionState: state, excursionSince }
}

for (const backend of backends) {
  describe(`seedDataset on ${backend.name}`, () => {
    let database: Database & { drop?: () => Promise<void> }
    let result: SeedResult
    let unitRows: UnitRow[]
    let readings: Map<string, ReadingRow[]>
    let alertRows: AlertRow[]

    beforeAll(async () => {
      database = await backend.create()
      result = await seedDataset(database.db, opts, manualClock(now))
      unitRows = await rows<UnitRow>(database.db, sql`
        SELECT u.*, d.status AS device_status, d.last_seen_at AS device_last_seen
        FROM units u JOIN devices d ON d.unit_id = u.id
        WHERE u.organization_id IN (${sql.join(result.orgIds.map((id) => sql`${id}::uuid`), sql`, `)})
        ORDER BY u.organization_id, u.name`)
      const all = await rows<ReadingRow>(database.db, sql`
        SELECT unit_id, temperature, recorded_at FROM sensor_readings
        WHERE organization_id IN (${sql.join(result.orgIds.map((id) => sql`${id}::uuid`), sql`, `)})
        ORDER BY unit_id, recorded_at`)
      readings = new Map(unitRows.map((u) => [u.id, all.filter((r) => r.unit_id === u.id)]))
      alertRows = await rows<AlertRow>(database.db, sql`SELECT * FROM alerts WHERE organization_id IN (${sql.join(result.orgIds.map((id) => sql`${id}::uuid`), sql`, `)})`)
    })
    afterAll(async () => { if (database) await disposeDatabase(database) })

    it('creates the organizations, sites, units and one device per unit with thresholds by type', async () => {
      expect(new Set(result.orgIds).size).toBe(2)
      const orgs = await rows<{ id: string, slug: string, sites: number, devices: number, euis: number }>(database.db, sql`
        SELECT o.id, o.slug,
          (SELECT count(*)::int FROM sites s WHERE s.organization_id = o.id) AS sites,
          (SELECT count(*)::int FROM devices d WHERE d.organization_id = o.id) AS devices,
          (SELECT count(DISTINCT device_eui)::int FROM devices d WHERE d.organization_id = o.id) AS euis
        FROM organizations o WHERE o.id IN (${sql.join(result.orgIds.map((id) => sql`${id}::uuid`), sql`, `)})`)
      expect(orgs).toHaveLength(2)
      for (const o of orgs) {
        expect(o.sites).toBeGreaterThanOrEqual(1)
        expect(o.sites).toBeLessThanOrEqual(3)
        expect(o.devices).toBe(5)
        expect(o.euis).toBe(5)
      }
      expect(unitRows).toHaveLength(10)
      for (const u of unitRows) {
        expect([Number(u.temp_min), Number(u.temp_max)]).toEqual(thresholds[u.unit_type])
      }
    })

    it('writes one reading per interval per unit, minus the silent tail of offline units', () => {
      const step = opts.intervalSeconds * 1000
      let missing = 0
      for (const u of unitRows) {
        const list = readings.get(u.id)!
        expect(list.length).toBeGreaterThan(0)
        list.forEach((r, i) => expect(ms(r.recorded_at)).toBe(start + i * step))
        const last = ms(list.at(-1)!.recorded_at)
        missing += (end - last) / step
        if (u.state !== 'offline') expect(last).toBe(end)
      }
      const expected = opts.orgs * opts.units * perUnit - missing
      expect(missing).toBeGreaterThan(0)
      expect(result.readings).toBe(expected)
      expect([...readings.values()].reduce((s, l) => s + l.length, 0)).toBe(expected)
    })

    it('leaves at least one unit per organization offline, silent for longer than the offline window', () => {
      for (const orgId of result.orgIds) {
        const offline = unitRows.filter((u) => u.organization_id === orgId && u.state === 'offline')
        expect(offline.length).toBeGreaterThanOrEqual(1)
        for (const u of offline) expect(end - ms(u.last_reading_at)).toBeGreaterThan(opts.offlineAfterMinutes * MIN)
      }
    })

    it('stores each unit state, last reading and device status as the SPEC rules derive them from its readings', () => {
      let outOfRange = 0
      for (const u of unitRows) {
        const list = readings.get(u.id)!
        const last = list.at(-1)!
        const exp = expectedState(list.map((r) => Number(r.temperature)), Number(u.temp_min), Number(u.temp_max), ms(last.recorded_at))
        expect(u.state, u.name).toBe(exp.state)
        expect(Number(u.last_temperature)).toBe(Number(last.temperature))
        expect(ms(u.last_reading_at)).toBe(ms(last.recorded_at))
        expect(ms(u.device_last_seen)).toBe(ms(last.recorded_at))
        expect(u.device_status).toBe(exp.state === 'offline' ? 'offline' : 'online')
        if (exp.state === 'too_hot' || exp.state === 'too_cold') {
          outOfRange++
          expect(ms(u.state_changed_at)).toBeLessThanOrEqual(end)
        }
        if (exp.state === 'offline') {
          expect(ms(u.state_changed_at)).toBe(ms(last.recorded_at) + opts.offlineAfterMinutes * MIN)
        }
      }
      expect(outOfRange).toBeGreaterThanOrEqual(opts.orgs)
    })

    it('has an open excursion alert for every out-of-range unit and an open offline alert for every offline unit', () => {
      const open = alertRows.filter((a) => a.status !== 'resolved')
      for (const u of unitRows) {
        const list = readings.get(u.id)!
        const exp = expectedState(list.map((r) => Number(r.temperature)), Number(u.temp_min), Number(u.temp_max), ms(list.at(-1)!.recorded_at))
        const excursions = open.filter((a) => a.unit_id === u.id && a.type === 'temperature_excursion')
        const offline = open.filter((a) => a.unit_id === u.id && a.type === 'offline')
        if (exp.excursionSince !== null) {
          expect(excursions, u.name).toHaveLength(1)
          const a = excursions[0]!
          expect(a.threshold).toBe(exp.excursionState === 'too_hot' ? 'temp_max' : 'temp_min')
          expect(ms(a.triggered_at)).toBe(exp.excursionSince)
          expect(a.severity).toBe(end - exp.excursionSince >= opts.confirmMinutes * MIN ? 'critical' : 'warning')
        } else {
          expect(excursions, u.name).toHaveLength(0)
        }
        expect(offline, u.name).toHaveLength(u.state === 'offline' ? 1 : 0)
      }
      for (const a of alertRows.filter((r) => r.status === 'resolved')) {
        expect(ms(a.resolved_at)).toBeGreaterThan(ms(a.triggered_at))
      }
    })

    it('keeps most readings in range around each unit set point', () => {
      let inRange = 0
      let total = 0
      for (const u of unitRows) {
        for (const r of readings.get(u.id)!) {
          total++
          if (Number(r.temperature) >= Number(u.temp_min) && Number(r.temperature) <= Number(u.temp_max)) inRange++
        }
      }
      expect(inRange / total).toBeGreaterThan(0.9)
    })

    it('reproduces the same data with the same seed', async () => {
      const again = await seedDataset(database.db, opts, manualClock(now))
      expect(again.readings).toBe(result.readings)
      const series = async (orgId: string) => (await rows<{ name: string, unit_type: string, temps: string }>(database.db, sql`
        SELECT u.name, u.unit_type, string_agg(r.temperature::text, ',' ORDER BY r.recorded_at) AS temps
        FROM units u JOIN sensor_readings r ON r.unit_id = u.id
        WHERE u.organization_id = ${orgId}::uuid GROUP BY u.name, u.unit_type ORDER BY u.name`))
      for (let i = 0; i < opts.orgs; i++) {
        expect(again.orgIds[i]).not.toBe(result.orgIds[i])
        expect(await series(again.orgIds[i]!)).toEqual(await series(result.orgIds[i]!))
      }
    })
  })
}
