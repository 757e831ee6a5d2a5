import { beforeAll, describe, expect, it } from 'vitest'
import { eq, inArray } from 'drizzle-orm'
import { alerts, devices, sensorReadings, sites, units, type UnitState } from '../../../src/db/schema.js'
import type { Db } from '../../../src/infra/postgres.js'
import type { DashboardQueryService } from '../../../src/features/dashboard/queries.js'
import type { AlertCounts, TrendPoint } from '../../../src/features/dashboard/types.js'
import { backends, useTestApp } from '../../helpers/fixture.js'
import { setThresholdsSinceCreation, type OrgFixture } from '../../helpers/fixtures.js'

// Not aligned to a 5-minute boundary, so the oldest and newest buckets of the window are partial.
const NOW = new Date('2026-03-10T12:02:30.000Z')
const MIN = 60_000
const HOUR = 60 * MIN
const BUCKET = 5 * MIN

interface Reading { unitId: string, deviceId: string, temperature: number, recordedAt: Date }
interface UnitInfo { id: string, tempMin: number, tempMax: number, isActive: boolean }
interface AlertRow { unitId: string, type: 'temperature_excursion' | 'offline', severity: 'warning' | 'critical', status: 'active' | 'acknowledged' | 'resolved' }

// Values exactly at the thresholds, one hundredth outside them, and averages that end in half a hundredth.
const fridgeTemps = [2, 8, 1.99, 8.01, 5.55, 3.33, 7.77, -0.5, 12.25, 4.01, 6.99, 2.01, 7.99]
const freezerTemps = [-25, -15, -25.01, -14.99, -18.33, -20.5, -10, -30.75, -17.01]
const inactiveTemps = [20, 30.5]
const otherOrgTemps = [30, 31.11]

/** A reading every 2 minutes from 26 h ago to 10 minutes in the future; unit 0's grid hits now − 24 h and now exactly. */
function readingsFor (unitId: string, deviceId: string, offsetSeconds: number, temps: number[]): Reading[] {
  const out: Reading[] = []
  for (let k = 0; k <= 785; k++) {
    out.push({
      unitId,
      deviceId,
      temperature: temps[(k * 3 + offsetSeconds) % temps.length]!,
      recordedAt: new Date(NOW.getTime() - 26 * HOUR + k * 2 * MIN + offsetSeconds * 1000)
    })
  }
  return out
}

async function insertReadings (db: Db, orgId: string, list: Reading[]): Promise<void> {
  for (let i = 0; i < list.length; i += 1000) {
    await db.insert(sensorReadings).values(list.slice(i, i + 1000).map((r) => ({ organizationId: orgId, ...r })))
  }
}

const inWindow = (r: Reading) => r.recordedAt.getTime() > NOW.getTime() - 24 * HOUR && r.recordedAt.getTime() <= NOW.getTime()
/** PostgreSQL's numeric round(): half away from zero. */
const roundHalfAway = (x: number) => Math.sign(x) * Math.round(Math.abs(x))
const cents = (t: number) => Math.round(t * 100)

function expectedCompliance (list: Reading[], unitsById: Map<string, UnitInfo>): number {
  let total = 0
  let inside = 0
  for (const r of list) {
    const u = unitsById.get(r.unitId)
    if (!u?.isActive || !inWindow(r)) continue
    total++
    if (cents(r.temperature) >= cents(u.tempMin) && cents(r.temperature) <= cents(u.tempMax)) inside++
  }
  return total === 0 ? 100 : roundHalfAway(1000 * inside / total) / 10
}

function expectedTrend (list: Reading[], unit: UnitInfo): TrendPoint[] {
  const buckets = new Map<number, number[]>()
  for (const r of list) {
    if (r.unitId !== unit.id || !inWindow(r)) continue
    const start = Math.floor(r.recordedAt.getTime() / BUCKET) * BUCKET
    buckets.set(start, [...(buckets.get(start) ?? []), cents(r.temperature)])
  }
  return [...buckets.entries()].sort(([a], [b]) => a - b).map(([start, temps]) => ({
    timestamp: new Date(start).toISOString(),
    temperature: roundHalfAway(temps.reduce((s, t) => s + t, 0) / temps.length) / 100,
    alarmState: temps.some((t) => t > cents(unit.tempMax)) ? 'too_hot' : temps.some((t) => t < cents(unit.tempMin)) ? 'too_cold' : 'normal'
  }))
}

function expectedAlerts (list: AlertRow[], unitIds: string[]): AlertCounts {
  const open = list.filter((a) => unitIds.includes(a.unitId) && a.status !== 'resolved')
  return {
    unresolved: open.length,
    acknowledged: open.filter((a) => a.status === 'acknowledged').length,
    critical: open.filter((a) => a.severity === 'critical').length
  }
}

describe.each(backends)('dashboard queries on $name', ({ name }) => {
  // The app's own queries (app.dashboard.queries), on the app's clock.
  const ctx = useTestApp({ backend: name, clock: NOW })
  let db: Db
  let queries: DashboardQueryService
  let a: OrgFixture
  let b: OrgFixture
  let unitsById: Map<string, UnitInfo>
  const allReadings: Reading[] = []
  const alertRows: AlertRow[] = []
  const states: UnitState[] = ['normal', 'too_hot', 'too_cold', 'offline', 'too_hot']

  beforeAll(async () => {
    db = ctx.db
    queries = ctx.app.dashboard.queries
    a = await ctx.org({ units: 5, tempMin: 2, tempMax: 8 })
    b = await ctx.org({ units: 2, tempMin: 2, tempMax: 8 })
    const [u0, u1, u2, u3, u4] = a.units.map((u) => u.id) as [string, string, string, string, string]
    // Unit 3 is a freezer, unit 4 has been deactivated; each unit gets its own state.
    await db.update(units).set({ unitType: 'freezer' }).where(eq(units.id, u3))
    await setThresholdsSinceCreation(db, u3, -25, -15)
    await db.update(units).set({ isActive: false }).where(eq(units.id, u4))
    for (const [i, u] of a.units.entries()) await db.update(units).set({ state: states[i]! }).where(eq(units.id, u.id))
    await db.update(units).set({ state: 'offline' }).where(inArray(units.id, b.units.map((u) => u.id)))
    unitsById = new Map(a.units.map((u, i) => [u.id, {
      id: u.id, tempMin: i === 3 ? -25 : 2, tempMax: i === 3 ? -15 : 8, isActive: i !== 4
    }]))

    await db.insert(sites).values([
      { organizationId: a.org.id, name: 'Second kitchen' },
      { organizationId: a.org.id, name: 'Closed store', isActive: false }
    ])

    await db.update(devices).set({ status: 'online' }).where(inArray(devices.id, [a.devices[0]!.id, a.devices[1]!.id, a.devices[3]!.id, ...b.devices.map((d) => d.id)]))

    alertRows.push(
      { unitId: u0, type: 'temperature_excursion', severity: 'warning', status: 'active' },
      { unitId: u1, type: 'temperature_excursion', severity: 'critical', status: 'acknowledged' },
      { unitId: u1, type: 'offline', severity: 'critical', status: 'active' },
      { unitId: u2, type: 'temperature_excursion', severity: 'critical', status: 'resolved' },
      { unitId: u2, type: 'temperature_excursion', severity: 'critical', status: 'active' },
      { unitId: u3, type: 'offline', severity: 'warning', status: 'acknowledged' },
      { unitId: u4, type: 'offline', severity: 'warning', status: 'active' }
    )
    await db.insert(alerts).values([
      ...alertRows.map((r) => ({ organizationId: a.org.id, triggeredAt: new Date(NOW.getTime() - HOUR), ...r })),
      { organizationId: b.org.id, unitId: b.units[0]!.id, type: 'offline' as const, severity: 'critical' as const, status: 'active' as const }
    ])

    const temps = [fridgeTemps, fridgeTemps, fridgeTemps, freezerTemps, inactiveTemps]
    for (const [i, u] of a.units.entries()) allReadings.push(...readingsFor(u.id, a.devices[i]!.id, i * 7, temps[i]!))
    await insertReadings(db, a.org.id, allReadings)
    await insertReadings(db, b.org.id, b.units.flatMap((u, i) => readingsFor(u.id, b.devices[i]!.id, i, otherOrgTemps)))
  })

  it('counts the active units of the organization by state', async () => {
    const active = a.units.map((_, i) => i).filter((i) => i !== 4)
    expect(await queries.unitsStatus(a.org.id)).toEqual({
      total: active.length,
      normal: active.filter((i) => states[i] === 'normal').length,
      too_hot: active.filter((i) => states[i] === 'too_hot').length,
      too_cold: active.filter((i) => states[i] === 'too_cold').length,
      offline: active.filter((i) => states[i] === 'offline').length
    })
  })

  it('counts open, acknowledged and critical alerts of the organization and of one unit', async () => {
    expect(await queries.alertsCount(a.org.id)).toEqual(expectedAlerts(alertRows, a.units.map((u) => u.id)))
    for (const u of a.units) {
      expect(await queries.alertsCount(a.org.id, u.id)).toEqual(expectedAlerts(alertRows, [u.id]))
    }
    // Another organization's unit id yields nothing, even though that unit has an open alert: no counts at all
    // (the route answers 404 and caches nothing), never zeros, and neither does an id of no unit.
    expect(await queries.alertsCount(a.org.id, b.units[0]!.id)).toBeNull()
    expect(await queries.alertsCount(a.org.id, '00000000-0000-4000-8000-000000000000')).toBeNull()
    // A unit of the organization without open alerts counts zeros.
    const quiet = await ctx.org({ units: 1 })
    expect(await queries.alertsCount(quiet.org.id, quiet.units[0]!.id)).toEqual({ unresolved: 0, acknowledged: 0, critical: 0 })
  })

  it('counts the devices of the organization by status', async () => {
    expect(await queries.devicesOnline(a.org.id)).toEqual({ total: 5, online: 3, offline: 2 })
    expect(await queries.devicesOnline(b.org.id)).toEqual({ total: 2, online: 2, offline: 0 })
  })

  it('averages the last 24 h into 5-minute buckets with the alarm state of each bucket', async () => {
    for (const u of a.units) {
      const trend = await queries.temperatureTrends(a.org.id, u.id)
      const expected = expectedTrend(allReadings, unitsById.get(u.id)!)
      expect(trend).toEqual({ unitId: u.id, points: expected })
    }
    const points = (await queries.temperatureTrends(a.org.id, a.units[0]!.id))!.points
    // The 24 h window holds 289 five-minute buckets when it does not start on a boundary.
    expect(points).toHaveLength(289)
    expect(points[0]!.timestamp).toBe('2026-03-09T12:00:00.000Z')
    expect(points.at(-1)!.timestamp).toBe('2026-03-10T12:00:00.000Z')
    expect(new Set(points.map((p) => p.alarmState))).toEqual(new Set(['normal', 'too_hot', 'too_cold']))
  })

  it('returns null for a unit outside the organization and no points for a silent unit', async () => {
    expect(await queries.temperatureTrends(a.org.id, b.units[0]!.id)).toBeNull()
    expect(await queries.temperatureTrends(a.org.id, '00000000-0000-4000-8000-000000000000')).toBeNull()
    const silent = await ctx.org({ units: 1 })
    expect(await queries.temperatureTrends(silent.org.id, silent.units[0]!.id)).toEqual({ unitId: silent.units[0]!.id, points: [] })
  })

  it("reads several units' trends in one statement, each exact; other organizations' units are left out", async () => {
    const silent = await ctx.org({ units: 1 })
    const foreign = b.units[0]!.id
    const unknown = '00000000-0000-4000-8000-000000000000'
    const ids = [...a.units.map((u) => u.id), foreign, unknown]
    const many = await queries.temperatureTrendsOf(a.org.id, ids)
    expect([...many.keys()].sort()).toEqual(a.units.map((u) => u.id).sort())
    for (const u of a.units) expect(many.get(u.id)).toEqual({ unitId: u.id, points: expectedTrend(allReadings, unitsById.get(u.id)!) })
    expect(await queries.temperatureTrendsOf(silent.org.id, [silent.units[0]!.id, foreign]))
      .toEqual(new Map([[silent.units[0]!.id, { unitId: silent.units[0]!.id, points: [] }]]))
    expect((await queries.temperatureTrendsOf(a.org.id, [])).size).toBe(0)
    // An id in another case is answered under the id as asked (it is the cache key's and the response's).
    const upper = a.units[0]!.id.toUpperCase()
    expect((await queries.temperatureTrendsOf(a.org.id, [upper])).get(upper)?.unitId).toBe(upper)
  })

  it('builds the dashboard stats from the same figures', async () => {
    const stats = await queries.stats(a.org.id)
    expect(stats).toEqual({
      organizationId: a.org.id,
      unitCounts: await queries.unitsStatus(a.org.id),
      alertCounts: await queries.alertsCount(a.org.id),
      deviceCounts: await queries.devicesOnline(a.org.id),
      compliancePercentage: expectedCompliance(allReadings, unitsById),
      siteCount: 2,
      worstState: 'offline',
      lastUpdated: NOW.toISOString()
    })
    // The readings are a mix of both sides, so the figure is neither 0 nor 100.
    expect(stats.compliancePercentage).toBeGreaterThan(0)
    expect(stats.compliancePercentage).toBeLessThan(100)
    expect(await queries.compliancePercentage(a.org.id)).toBe(stats.compliancePercentage)
    expect(await queries.compliancePercentage(b.org.id)).toBe(0)
  })

  it('takes a known compliance figure instead of scanning the readings again', async () => {
    const full = await queries.stats(a.org.id)
    expect(await queries.stats(a.org.id, { compliancePercentage: 42.5 })).toEqual({ ...full, compliancePercentage: 42.5 })
  })

  it('reports 100 % compliance and zero counts for an organization without readings or units', async () => {
    const empty = await ctx.org({ units: 0 })
    expect(await queries.stats(empty.org.id)).toEqual({
      organizationId: empty.org.id,
      unitCounts: { total: 0, normal: 0, too_hot: 0, too_cold: 0, offline: 0 },
      alertCounts: { unresolved: 0, acknowledged: 0, critical: 0 },
      deviceCounts: { total: 0, online: 0, offline: 0 },
      compliancePercentage: 100,
      siteCount: 1,
      worstState: 'normal',
      lastUpdated: NOW.toISOString()
    })
  })

  it('picks the worst state of the active units: offline > too_hot > too_cold > normal', async () => {
    const org = await ctx.org({ units: 4 })
    const [, c, h, o] = org.units.map((u) => u.id) as [string, string, string, string]
    await db.update(units).set({ state: 'offline', isActive: false }).where(eq(units.id, o))
    expect((await queries.stats(org.org.id)).worstState).toBe('normal')
    await db.update(units).set({ state: 'too_cold' }).where(eq(units.id, c))
    expect((await queries.stats(org.org.id)).worstState).toBe('too_cold')
    await db.update(units).set({ state: 'too_hot' }).where(eq(units.id, h))
    expect((await queries.stats(org.org.id)).worstState).toBe('too_hot')
    await db.update(units).set({ isActive: true }).where(eq(units.id, o))
    expect((await queries.stats(org.org.id)).worstState).toBe('offline')
  })
})
