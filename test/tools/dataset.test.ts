import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sql } from 'drizzle-orm'
import { rows, type Database } from '../../src/infra/postgres.js'
import { manualClock } from '../../src/lib/clock.js'
import { seedDataset, type SeedResult } from '../../src/tools/dataset.js'
import { replayUnit } from '../../src/tools/replay.js'
import { createPgliteTestDatabase, createTestDatabase } from '../helpers/db.js'
import { backends } from '../helpers/fixture.js'

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
  created_at: Date | string
  device_status: string
  device_last_seen: Date | string | null
}
interface ReadingRow { unit_id: string, temperature: string, recorded_at: Date | string }
interface AlertRow {
  unit_id: string
  type: string
  severity: string
  status: string
  threshold: string | null
  trigger_temperature: string | null
  triggered_at: Date | string
  acknowledged_at: Date | string | null
  resolved_at: Date | string | null
}

const MIN = 60_000
/** drizzle's node-postgres returns raw timestamps as strings, PGlite as Dates. */
const ms = (v: Date | string | null): number => v === null ? NaN : new Date(v).getTime()

interface ExpectedExcursion {
  threshold: 'temp_max' | 'temp_min'
  triggeredAt: number
  triggerTemperature: number
  resolvedAt: number | null
  severity: 'warning' | 'critical'
}
interface Expected {
  state: 'normal' | 'too_hot' | 'too_cold' | 'offline'
  stateChangedAt: number
  excursions: ExpectedExcursion[]
  /** When the unit went offline (and its offline alert opened), if it did by `end`. */
  offlineAt: number | null
}

/**
 * The monitoring rules recomputed independently of src/features/monitoring (README.md, "Monitoring"): the
 * state after each reading (too_hot above temp_max until a reading ≤ temp_max − 0.5, too_cold
 * below temp_min until a reading ≥ temp_min + 0.5, compared in hundredths like the numeric(6,2) column),
 * one excursion alert per stretch on one side of the range (a direct jump from too_hot to too_cold ends one
 * and opens another with the other threshold), critical once it has been open CONFIRM_MINUTES (the sweeper
 * checks between readings; a reading at that very instant is evaluated first), offline once silent for
 * OFFLINE_AFTER_MINUTES (an excursion open then stays open, unescalated from then on).
 */
function expectedHistory (h: { temps: number[], times: number[], min: number, max: number, createdAt: number, end: number, offlineAfter: number, confirm: number }): Expected {
  const lo = Math.round(h.min * 100)
  const hi = Math.round(h.max * 100)
  let state: Expected['state'] = 'normal'
  let changedAt = h.createdAt
  const excursions: ExpectedExcursion[] = []
  let open: ExpectedExcursion | null = null
  h.temps.forEach((temperature, i) => {
    const at = h.times[i]!
    const t = Math.round(temperature * 100)
    let next: Expected['state']
    if (t > hi) next = 'too_hot'
    else if (t < lo) next = 'too_cold'
    else if (state === 'too_hot' && t > hi - 50) next = 'too_hot'
    else if (state === 'too_cold' && t < lo + 50) next = 'too_cold'
    else next = 'normal'
    if (next !== state) { state = next; changedAt = at }
    const threshold = state === 'too_hot' ? 'temp_max' : state === 'too_cold' ? 'temp_min' : null
    if (open && open.threshold !== threshold) { open.resolvedAt = at; open = null }
    if (threshold && !open) {
      open = { threshold, triggeredAt: at, triggerTemperature: temperature, resolvedAt: null, severity: 'warning' }
      excursions.push(open)
    }
  })
  const silentSince = h.times.at(-1) ?? h.createdAt
  const offlineAt = silentSince + h.offlineAfter <= h.end ? silentSince + h.offlineAfter : null
  for (const e of excursions) {
    const confirmedAt = e.triggeredAt + h.confirm
    const escalated = e.resolvedAt !== null ? e.resolvedAt > confirmedAt : Math.min(h.end, offlineAt ?? Infinity) >= confirmedAt
    if (escalated) e.severity = 'critical'
  }
  return offlineAt === null
    ? { state, stateChangedAt: changedAt, excursions, offlineAt }
    : { state: 'offline', stateChangedAt: offlineAt, excursions, offlineAt }
}

const opts = { orgs: 2, units: 5, hours: 2, intervalSeconds: 60, seed: 42, offlineAfterMinutes: 15, confirmMinutes: 10 }
const now = new Date('2026-03-10T14:30:17.456Z')
const end = Math.floor(now.getTime() / 1000) * 1000
const perUnit = (opts.hours * 3600) / opts.intervalSeconds
const start = end - (perUnit - 1) * opts.intervalSeconds * 1000

describe.each(backends)('seedDataset ($name)', ({ name }) => {
  let database: Database & { drop?: () => Promise<void> }
  let result: SeedResult
  let unitRows: UnitRow[]
  let readings: Map<string, ReadingRow[]>
  let alertRows: AlertRow[]
  const expected = new Map<string, Expected>()

  beforeAll(async () => {
    database = name === 'pglite' ? await createPgliteTestDatabase() : await createTestDatabase()
    result = await seedDataset(database.db, opts, manualClock(now))
    const orgs = sql.join(result.orgIds.map((id) => sql`${id}::uuid`), sql`, `)
    unitRows = await rows<UnitRow>(database.db, sql`
      SELECT u.*, d.status AS device_status, d.last_seen_at AS device_last_seen
      FROM units u JOIN devices d ON d.unit_id = u.id
      WHERE u.organization_id IN (${orgs})
      ORDER BY u.organization_id, u.name`)
    const all = await rows<ReadingRow>(database.db, sql`
      SELECT unit_id, temperature, recorded_at FROM sensor_readings
      WHERE organization_id IN (${orgs})
      ORDER BY unit_id, recorded_at`)
    readings = new Map(unitRows.map((u) => [u.id, all.filter((r) => r.unit_id === u.id)]))
    alertRows = await rows<AlertRow>(database.db, sql`SELECT * FROM alerts WHERE organization_id IN (${orgs}) ORDER BY triggered_at, type`)
    for (const u of unitRows) {
      const list = readings.get(u.id)!
      expected.set(u.id, expectedHistory({
        temps: list.map((r) => Number(r.temperature)),
        times: list.map((r) => ms(r.recorded_at)),
        min: Number(u.temp_min),
        max: Number(u.temp_max),
        createdAt: ms(u.created_at),
        end,
        offlineAfter: opts.offlineAfterMinutes * MIN,
        confirm: opts.confirmMinutes * MIN
      }))
    }
  })
  afterAll(async () => {
    if (!database) return
    if (database.drop) await database.drop()
    else await database.close()
  })

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
    const total = opts.orgs * opts.units * perUnit - missing
    expect(missing).toBeGreaterThan(0)
    expect(result.readings).toBe(total)
    expect([...readings.values()].reduce((s, l) => s + l.length, 0)).toBe(total)
  })

  it('leaves at least one unit per organization offline, silent for longer than the offline window', () => {
    for (const orgId of result.orgIds) {
      const offline = unitRows.filter((u) => u.organization_id === orgId && u.state === 'offline')
      expect(offline.length).toBeGreaterThanOrEqual(1)
      for (const u of offline) expect(end - ms(u.last_reading_at)).toBeGreaterThan(opts.offlineAfterMinutes * MIN)
    }
  })

  it('stores each unit state, when it changed, last reading and device status as the rules derive them from its readings', () => {
    let outOfRange = 0
    for (const u of unitRows) {
      const last = readings.get(u.id)!.at(-1)!
      const exp = expected.get(u.id)!
      expect(u.state, u.name).toBe(exp.state)
      expect(ms(u.state_changed_at), u.name).toBe(exp.stateChangedAt)
      expect(Number(u.last_temperature)).toBe(Number(last.temperature))
      expect(ms(u.last_reading_at)).toBe(ms(last.recorded_at))
      expect(ms(u.device_last_seen)).toBe(ms(last.recorded_at))
      expect(u.device_status).toBe(exp.state === 'offline' ? 'offline' : 'online')
      if (exp.state === 'too_hot' || exp.state === 'too_cold') outOfRange++
    }
    expect(outOfRange).toBeGreaterThanOrEqual(opts.orgs)
  })

  it('has exactly the excursion alerts the rules raise, resolve and escalate, and an open offline alert for every offline unit', () => {
    let resolved = 0
    let critical = 0
    for (const u of unitRows) {
      const exp = expected.get(u.id)!
      const excursions = alertRows.filter((a) => a.unit_id === u.id && a.type === 'temperature_excursion')
      expect(excursions.map((a) => ({
        threshold: a.threshold,
        triggeredAt: ms(a.triggered_at),
        triggerTemperature: Number(a.trigger_temperature),
        resolvedAt: a.resolved_at === null ? null : ms(a.resolved_at),
        severity: a.severity
      })), u.name).toEqual(exp.excursions)
      for (const a of excursions) {
        expect(a.status, u.name).toBe(a.resolved_at !== null ? 'resolved' : a.acknowledged_at !== null ? 'acknowledged' : 'active')
        // Managers acknowledge some confirmed excursions, halfway through them.
        if (a.acknowledged_at !== null) {
          expect(a.severity).toBe('critical')
          const until = a.resolved_at === null ? end : ms(a.resolved_at)
          expect(ms(a.acknowledged_at)).toBe(ms(a.triggered_at) + Math.floor((until - ms(a.triggered_at)) / 2))
        }
      }
      resolved += exp.excursions.filter((e) => e.resolvedAt !== null).length
      critical += exp.excursions.filter((e) => e.severity === 'critical').length
      const offline = alertRows.filter((a) => a.unit_id === u.id && a.type === 'offline')
      expect(offline.map((a) => ({ status: a.status, triggeredAt: ms(a.triggered_at), severity: a.severity })), u.name)
        .toEqual(exp.offlineAt === null ? [] : [{ status: 'active', triggeredAt: exp.offlineAt, severity: 'warning' }])
    }
    // The dataset exercises the rules: excursions that ended, and confirmed ones.
    expect(resolved).toBeGreaterThan(0)
    expect(critical).toBeGreaterThan(0)
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

/**
 * The histories a generated dataset rarely or never holds, replayed the way seedDataset replays each unit
 * (src/tools/replay.ts) and compared with the rules recomputed above.
 */
describe('replayUnit: crafted histories against the recomputed rules', () => {
  const t0 = Date.UTC(2030, 0, 1)
  const limits = { tempMin: 2, tempMax: 8, offlineAfterMs: 15 * MIN, confirmMs: 10 * MIN }

  /** A fridge (2–8 °C) reading `temps` every `intervalMin` minutes from t0, looked at `silentMin` minutes after the last. */
  function replay (temps: number[], { intervalMin = 1, silentMin = 0 } = {}) {
    const intervalMs = intervalMin * MIN
    const nowMs = t0 + (temps.length - 1) * intervalMs + silentMin * MIN
    const createdAtMs = t0 - 24 * 60 * MIN
    const result = replayUnit({
      temps: Int32Array.from(temps.map((t) => Math.round(t * 100))),
      ...limits,
      startMs: t0,
      intervalMs,
      nowMs,
      createdAtMs
    })
    const exp = expectedHistory({
      temps,
      times: temps.map((_, i) => t0 + i * intervalMs),
      min: limits.tempMin,
      max: limits.tempMax,
      createdAt: createdAtMs,
      end: nowMs,
      offlineAfter: limits.offlineAfterMs,
      confirm: limits.confirmMs
    })
    const excursions = result.alerts.filter((a) => a.type === 'temperature_excursion').map((a) => ({
      threshold: a.threshold,
      triggeredAt: a.triggeredAt.getTime(),
      triggerTemperature: a.triggerTemperature,
      resolvedAt: a.resolvedAt?.getTime() ?? null,
      severity: a.severity
    }))
    const offline = result.alerts.filter((a) => a.type === 'offline').map((a) => a.triggeredAt.getTime())
    return { result, exp, excursions, offline }
  }
  const at = (minutes: number) => t0 + minutes * MIN

  it('ends the too_hot excursion and opens a too_cold one when a unit jumps straight from too_hot to too_cold', () => {
    const { result, exp, excursions } = replay([5, 9, 9.5, 1, 1.2, 3])
    expect(excursions).toEqual([
      { threshold: 'temp_max', triggeredAt: at(1), triggerTemperature: 9, resolvedAt: at(3), severity: 'warning' },
      { threshold: 'temp_min', triggeredAt: at(3), triggerTemperature: 1, resolvedAt: at(5), severity: 'warning' }
    ])
    expect(excursions).toEqual(exp.excursions)
    expect({ state: result.state, stateChangedAt: result.stateChangedAt.getTime() }).toEqual({ state: exp.state, stateChangedAt: exp.stateChangedAt })
  })

  it('escalates the first excursion of a jump when it lasted CONFIRM_MINUTES, and leaves the new one open at the end', () => {
    const { result, exp, excursions } = replay([5, ...Array(12).fill(9), 1, 1])
    expect(excursions).toEqual([
      { threshold: 'temp_max', triggeredAt: at(1), triggerTemperature: 9, resolvedAt: at(13), severity: 'critical' },
      { threshold: 'temp_min', triggeredAt: at(13), triggerTemperature: 1, resolvedAt: null, severity: 'warning' }
    ])
    expect(excursions).toEqual(exp.excursions)
    expect(result.state).toBe('too_cold')
    expect(result.stateChangedAt.getTime()).toBe(at(13))
  })

  it('jumps from too_cold to too_hot the same way', () => {
    const { exp, excursions } = replay([1, 1, 9, 7])
    expect(excursions.map((e) => [e.threshold, e.triggeredAt, e.resolvedAt])).toEqual([['temp_min', at(0), at(2)], ['temp_max', at(2), at(3)]])
    expect(excursions).toEqual(exp.excursions)
  })

  it('holds an excursion inside the 0.5 °C hysteresis band', () => {
    const { result, exp, excursions } = replay([9, 7.6, 7.51, 7.5, 2.3, 1.9, 2.49, 2.5])
    expect(excursions.map((e) => [e.threshold, e.triggeredAt, e.resolvedAt])).toEqual([['temp_max', at(0), at(3)], ['temp_min', at(5), at(7)]])
    expect(excursions).toEqual(exp.excursions)
    expect(result.state).toBe('normal')
  })

  it('keeps an excursion open when the unit goes silent, opens the offline alert, and escalates it by then', () => {
    const { result, exp, excursions, offline } = replay([5, 9, 9], { silentMin: 40 })
    expect(result.state).toBe('offline')
    expect(result.stateChangedAt.getTime()).toBe(at(2 + 15))
    expect(offline).toEqual([at(2 + 15)])
    expect(excursions).toEqual([{ threshold: 'temp_max', triggeredAt: at(1), triggerTemperature: 9, resolvedAt: null, severity: 'critical' }])
    expect(excursions).toEqual(exp.excursions)
    expect(offline).toEqual([exp.offlineAt])
  })

  it('leaves a young excursion a warning', () => {
    const { exp, excursions } = replay([5, 9, 9, 9], { silentMin: 2 })
    expect(excursions).toEqual([{ threshold: 'temp_max', triggeredAt: at(1), triggerTemperature: 9, resolvedAt: null, severity: 'warning' }])
    expect(excursions).toEqual(exp.excursions)
  })

  it('escalates an excursion that was still open CONFIRM_MINUTES after it began, even with no reading at that moment', () => {
    // Readings every 7 minutes: out at 0 and 7, back at 14. The sweeper, which runs every SWEEP_INTERVAL_SECONDS
    // in between, escalates it at minute 10; a reading exactly at the confirm instant is evaluated first.
    expect(replay([9, 9, 5], { intervalMin: 7 }).exp.excursions).toEqual([
      { threshold: 'temp_max', triggeredAt: at(0), triggerTemperature: 9, resolvedAt: at(14), severity: 'critical' }
    ])
    for (const history of [replay([9, 9, 5], { intervalMin: 7 }), replay([...Array(10).fill(9), 5]), replay([...Array(11).fill(9), 5])]) {
      expect(history.excursions).toEqual(history.exp.excursions)
    }
  })
})
