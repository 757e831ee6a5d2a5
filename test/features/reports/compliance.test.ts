import { beforeAll, describe, expect, it } from 'vitest'
import { randomUUID } from 'node:crypto'
import { eq } from 'drizzle-orm'
import { alerts, sensorReadings, units } from '../../../src/db/schema.js'
import type { Db } from '../../../src/infra/postgres.js'
import type { ComplianceReport } from '../../../src/features/reports/service.js'
import { backends, useTestApp } from '../../helpers/fixture.js'
import { setThresholdsSinceCreation, type OrgFixture } from '../../helpers/fixtures.js'

const NOW = new Date('2026-03-10T12:02:30.000Z')
const MIN = 60_000
const HOUR = 60 * MIN
const DAY = 24 * HOUR

interface UnitInfo { id: string, name: string, tempMin: number, tempMax: number, isActive: boolean }
interface Reading { unitId: string, deviceId: string, temperature: number, recordedAt: Date }
interface Excursion { unitId: string, type: 'temperature_excursion' | 'offline', triggeredAt: Date }

// Threshold values themselves, one hundredth outside, and plainly inside or outside.
const fridgeTemps = [2, 8, 1.99, 8.01, 5, 4.4, 9.5, 0.5, 6.25]
const freezerTemps = [-25, -15, -25.01, -14.99, -18, -30, -16.5]

/** A reading every 10 minutes from 30 h ago to 20 minutes ahead: the grid hits now − 24 h and now exactly. */
function readingsFor (unitId: string, deviceId: string, temps: number[], shift: number): Reading[] {
  return Array.from({ length: 183 }, (_, k) => ({
    unitId,
    deviceId,
    temperature: temps[(k + shift) % temps.length]!,
    recordedAt: new Date(NOW.getTime() - 30 * HOUR + k * 10 * MIN)
  }))
}

const cents = (t: number) => Math.round(t * 100)
const roundHalfAway = (x: number) => Math.sign(x) * Math.round(Math.abs(x))

/** The report computed from the inserted rows, independently of SQL. */
function expectedReport (orgId: string, unitList: UnitInfo[], readings: Reading[], excursions: Excursion[], from: Date, to: Date): ComplianceReport {
  const inside = (d: Date) => d.getTime() >= from.getTime() && d.getTime() < to.getTime()
  return {
    organizationId: orgId,
    from: from.toISOString(),
    to: to.toISOString(),
    units: unitList.filter((u) => u.isActive).sort((a, b) => (a.name < b.name ? -1 : 1)).map((u) => {
      const mine = readings.filter((r) => r.unitId === u.id && inside(r.recordedAt))
      const inRange = mine.filter((r) => cents(r.temperature) >= cents(u.tempMin) && cents(r.temperature) <= cents(u.tempMax)).length
      const mineExcursions = excursions.filter((e) => e.unitId === u.id && e.type === 'temperature_excursion' && inside(e.triggeredAt))
      const isIn = (r: Reading) => cents(r.temperature) >= cents(u.tempMin) && cents(r.temperature) <= cents(u.tempMax)
      const days = []
      for (let day = Math.floor(from.getTime() / DAY) * DAY; day < to.getTime(); day += DAY) {
        const onDay = (d: Date) => d.getTime() >= day && d.getTime() < day + DAY
        const dayReadings = mine.filter((r) => onDay(r.recordedAt))
        const dayIn = dayReadings.filter(isIn).length
        days.push({
          date: new Date(day).toISOString().slice(0, 10),
          readings: dayReadings.length,
          inRange: dayIn,
          percentage: dayReadings.length === 0 ? 100 : roundHalfAway(1000 * dayIn / dayReadings.length) / 10,
          min: dayReadings.length === 0 ? null : Math.min(...dayReadings.map((r) => r.temperature)),
          max: dayReadings.length === 0 ? null : Math.max(...dayReadings.map((r) => r.temperature)),
          excursions: mineExcursions.filter((e) => onDay(e.triggeredAt)).length
        })
      }
      return {
        unitId: u.id,
        unitName: u.name,
        readings: mine.length,
        inRange,
        percentage: mine.length === 0 ? 100 : roundHalfAway(1000 * inRange / mine.length) / 10,
        excursions: mineExcursions.length,
        min: mine.length === 0 ? null : Math.min(...mine.map((r) => r.temperature)),
        max: mine.length === 0 ? null : Math.max(...mine.map((r) => r.temperature)),
        days
      }
    })
  }
}

async function insertReadings (db: Db, orgId: string, list: Reading[]): Promise<void> {
  for (let i = 0; i < list.length; i += 1000) {
    await db.insert(sensorReadings).values(list.slice(i, i + 1000).map((r) => ({ organizationId: orgId, ...r })))
  }
}

describe.each(backends)('compliance report on $name', ({ name }) => {
  const ctx = useTestApp({ backend: name, clock: NOW })
  let a: OrgFixture
  let b: OrgFixture
  const unitList: UnitInfo[] = []
  const readings: Reading[] = []
  const excursions: Excursion[] = []

  const report = (query: string, orgId = a.org.id, headers = ctx.bearer({ [orgId]: 'viewer' })) =>
    ctx.app.inject({ url: `/api/orgs/${orgId}/reports/compliance${query}`, headers })
  const expected = (from: Date, to: Date) => expectedReport(a.org.id, unitList, readings, excursions, from, to)

  beforeAll(async () => {
    const db = ctx.db
    a = await ctx.org({ units: 4, tempMin: 2, tempMax: 8 })
    b = await ctx.org({ units: 1, tempMin: 2, tempMax: 8 })

    // Names out of insertion order; a freezer; a deactivated unit; a unit that never reported.
    const specs = [
      { name: 'Delta walk-in', tempMin: 2, tempMax: 8, isActive: true, temps: fridgeTemps },
      { name: 'Alpha fridge', tempMin: 2, tempMax: 8, isActive: true, temps: fridgeTemps },
      { name: 'Charlie freezer', tempMin: -25, tempMax: -15, isActive: true, temps: freezerTemps },
      { name: 'Bravo display', tempMin: 2, tempMax: 8, isActive: false, temps: [20] }
    ]
    for (const [i, s] of specs.entries()) {
      const u = a.units[i]!
      await db.update(units).set({ name: s.name, isActive: s.isActive }).where(eq(units.id, u.id))
      await setThresholdsSinceCreation(db, u.id, s.tempMin, s.tempMax)
      unitList.push({ id: u.id, name: s.name, tempMin: s.tempMin, tempMax: s.tempMax, isActive: s.isActive })
      readings.push(...readingsFor(u.id, a.devices[i]!.id, s.temps, i))
    }
    const [spare] = await db.insert(units).values({ organizationId: a.org.id, siteId: a.site.id, name: 'Echo spare', unitType: 'fridge', tempMin: 2, tempMax: 8 }).returning()
    unitList.push({ id: spare!.id, name: 'Echo spare', tempMin: 2, tempMax: 8, isActive: true })
    await insertReadings(db, a.org.id, readings)
    await insertReadings(db, b.org.id, readingsFor(b.units[0]!.id, b.devices[0]!.id, [30], 0))

    const [u0, u1, u2, u3] = unitList.map((u) => u.id) as [string, string, string, string]
    excursions.push(
      { unitId: u0, type: 'temperature_excursion', triggeredAt: new Date(NOW.getTime() - 2 * HOUR) },
      { unitId: u0, type: 'temperature_excursion', triggeredAt: new Date(NOW.getTime() - 5 * HOUR) },
      { unitId: u0, type: 'temperature_excursion', triggeredAt: new Date(NOW.getTime() - 30 * HOUR) },
      { unitId: u1, type: 'temperature_excursion', triggeredAt: new Date(NOW.getTime() - DAY) },
      { unitId: u1, type: 'temperature_excursion', triggeredAt: NOW },
      { unitId: u2, type: 'offline', triggeredAt: new Date(NOW.getTime() - HOUR) },
      { unitId: u3, type: 'temperature_excursion', triggeredAt: new Date(NOW.getTime() - HOUR) }
    )
    // All resolved so that several may exist per unit (at most one may be open per unit and type).
    await db.insert(alerts).values([
      ...excursions.map((e) => ({ organizationId: a.org.id, status: 'resolved' as const, ...e })),
      { organizationId: b.org.id, unitId: b.units[0]!.id, type: 'temperature_excursion' as const, triggeredAt: new Date(NOW.getTime() - HOUR) }
    ])
  })

  it('reports the last 24 h per active unit, ordered by name, never from the cache', async () => {
    const res = await report('')
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-cache']).toBe('bypass')
    const body = res.json<ComplianceReport>()
    expect(body).toEqual(expected(new Date(NOW.getTime() - DAY), NOW))
    expect(body.units.map((u) => u.unitName)).toEqual(['Alpha fridge', 'Charlie freezer', 'Delta walk-in', 'Echo spare'])
    // The readings mix both sides of the thresholds, and the silent unit counts as compliant.
    expect(body.units[0]!.percentage).toBeGreaterThan(0)
    expect(body.units[0]!.percentage).toBeLessThan(100)
    expect(body.units[3]).toMatchObject({ readings: 0, inRange: 0, percentage: 100, excursions: 0 })
  })

  it('counts readings and excursions in [from, to): the start is included, the end is not', async () => {
    const from = new Date(NOW.getTime() - 6 * HOUR)
    const to = new Date(NOW.getTime() - 2 * HOUR)
    const res = await report(`?from=${from.toISOString()}&to=${to.toISOString()}`)
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual(expected(from, to))
    const unit0 = res.json<ComplianceReport>().units.find((u) => u.unitName === 'Delta walk-in')!
    // 10-minute grid from 6 h to 2 h ago: 24 readings; the excursion 5 h ago counts, the one at `to` does not.
    expect(unit0.readings).toBe(24)
    expect(unit0.excursions).toBe(1)
  })

  it('defaults a missing end to now and a missing start to 24 h before the end', async () => {
    const from = new Date(NOW.getTime() - 28 * HOUR)
    const onlyFrom = await report(`?from=${encodeURIComponent('2026-03-09T10:02:30+02:00')}`)
    expect(onlyFrom.statusCode).toBe(200)
    expect(onlyFrom.json()).toEqual(expected(new Date('2026-03-09T08:02:30.000Z'), NOW))
    const to = new Date(NOW.getTime() - 4 * HOUR)
    const onlyTo = await report(`?to=${to.toISOString()}`)
    expect(onlyTo.json()).toEqual(expected(new Date(to.getTime() - DAY), to))
    const wide = await report(`?from=${from.toISOString()}&to=${NOW.toISOString()}`)
    expect(wide.json()).toEqual(expected(from, NOW))
  })

  it('accepts a window of exactly 366 days', async () => {
    const res = await report(`?from=${new Date(NOW.getTime() - 366 * DAY).toISOString()}&to=${NOW.toISOString()}`)
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual(expected(new Date(NOW.getTime() - 366 * DAY), NOW))
  })

  it('rejects windows that are empty, reversed, longer than 366 days or not date-times', async () => {
    const iso = (ms: number) => new Date(ms).toISOString()
    const cases = [
      `?from=${iso(NOW.getTime())}&to=${iso(NOW.getTime())}`,
      `?from=${iso(NOW.getTime() - HOUR)}&to=${iso(NOW.getTime() - 2 * HOUR)}`,
      `?from=${iso(NOW.getTime() - 366 * DAY - 1)}&to=${iso(NOW.getTime())}`,
      `?from=${iso(NOW.getTime() + HOUR)}`,
      '?from=yesterday',
      '?to=2026-13-45T00:00:00Z'
    ]
    for (const query of cases) {
      const res = await report(query)
      expect(res.statusCode, query).toBe(400)
      expect(res.json(), query).toEqual({ error: { code: 'VALIDATION_ERROR', message: expect.any(String) } })
    }
    const badOrg = await ctx.app.inject({ url: '/api/orgs/not-a-uuid/reports/compliance', headers: ctx.bearer({ 'not-a-uuid': 'owner' }) })
    expect(badOrg.statusCode).toBe(400)
  })

  it('refuses another organization\'s token and a missing token', async () => {
    const other = await report('', a.org.id, ctx.bearer({ [b.org.id]: 'owner' }))
    expect(other.statusCode).toBe(403)
    expect(other.json().error.code).toBe('FORBIDDEN')
    const anonymous = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/reports/compliance` })
    expect(anonymous.statusCode).toBe(401)
  })

  it('keeps each organization to its own readings and answers 404 for an organization that does not exist', async () => {
    const res = await report('', b.org.id)
    expect(res.json<ComplianceReport>().units).toMatchObject([
      { unitId: b.units[0]!.id, unitName: 'Unit 1', readings: 144, inRange: 0, percentage: 0, excursions: 1, min: 30, max: 30 }
    ])
    const missing = randomUUID()
    const gone = await report('', missing)
    expect(gone.statusCode).toBe(404)
  })

  it('is described in the OpenAPI document', async () => {
    const doc = (await ctx.app.inject({ url: '/docs/json' })).json()
    const op = doc.paths['/api/orgs/{orgId}/reports/compliance'].get
    expect(op.tags).toEqual(['reports'])
    expect(op.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['format', 'from', 'orgId', 'to'])
  })
})
