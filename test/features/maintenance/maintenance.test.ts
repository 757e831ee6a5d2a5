import { describe, expect, it } from 'vitest'
import { sql } from 'drizzle-orm'
import { sensorReadings } from '../../../src/db/schema.js'
import { rows } from '../../../src/infra/postgres.js'
import { listPartitions } from '../../../src/features/maintenance/partitions.js'
import type { ComplianceReport } from '../../../src/features/reports/service.js'
import { backends, useTestApp } from '../../helpers/fixture.js'
import { ReadingLog, cents, entries, expectedRollups, storedRollups, type StoredReading } from '../../helpers/rollups.js'

// Partitions ahead and on demand, the default partition as a safety net, and retention: whole partitions only,
// reports across the retention boundary answered from rollups. READINGS_RETENTION_DAYS 60 and
// ROLLUP_RETENTION_DAYS 120 at 2026-06-15T10:00Z: raw partitions ending by 2026-04-16T10:00 go, hourly and daily
// rollups before 2026-02-15.

const NOW = new Date('2026-06-15T10:00:00.000Z')
const HOUR = 3_600_000
const DAY = 24 * HOUR
const temps = [2, 8, 1.99, 8.01, 5.55, -0.5, 12.25, 4.01]

const partitionCounts = async (db: Parameters<typeof listPartitions>[0], orgId: string) => new Map((await rows<{ name: string, n: number }>(db, sql`
  select c.relname::text as name, (select count(*) from sensor_readings r where r.tableoid = c.oid and r.organization_id = ${orgId})::int as n
  from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'sensor_readings'::regclass`)).map((r) => [r.name, r.n]))

describe.each(backends)('partitions and retention on $name', ({ name }) => {
  const ctx = useTestApp({ backend: name, clock: NOW, env: { READINGS_RETENTION_DAYS: '60', ROLLUP_RETENTION_DAYS: '120' } })

  it('creates this month\'s partition and the next two ahead of time, once', async () => {
    ctx.clock.set(NOW)
    const first = await ctx.app.maintenance.run()
    expect(first.created).toEqual(expect.arrayContaining(['sensor_readings_2026_06', 'sensor_readings_2026_07', 'sensor_readings_2026_08']))
    const names = (await listPartitions(ctx.db)).map((p) => p.name)
    expect(names).toEqual(expect.arrayContaining(['sensor_readings_default', 'sensor_readings_2026_06', 'sensor_readings_2026_07', 'sensor_readings_2026_08']))
    expect((await ctx.app.maintenance.run()).created).toEqual([])
  })

  it('accepts readings for a far past and a far future month, each into a partition of its own', async () => {
    const fx = await ctx.org({ units: 1 })
    ctx.clock.set(new Date('2031-07-01T00:02:00.000Z'))
    const past = new Date('2019-02-03T04:05:06.000Z')
    const future = new Date('2031-07-01T00:06:00.000Z')
    const res = await ctx.ingest(fx, [past, future].map((recordedAt) => ({ deviceEui: fx.devices[0]!.deviceEui, temperature: 5, recordedAt })))
    expect(res.statusCode).toBe(202)
    expect(res.json()).toEqual({ accepted: 2, duplicates: 0 })
    const counts = await partitionCounts(ctx.db, fx.org.id)
    expect(counts.get('sensor_readings_2019_02')).toBe(1)
    expect(counts.get('sensor_readings_2031_07')).toBe(1)
    expect(counts.get('sensor_readings_default')).toBe(0)
    ctx.clock.set(NOW)
  })

  it('moves a reading parked in the default partition into a partition of its own without counting it twice', async () => {
    ctx.clock.set(NOW)
    const fx = await ctx.org({ units: 1 })
    // Written straight through the parent for a month without a partition (as if on-demand creation had failed).
    await ctx.db.insert(sensorReadings).values({ organizationId: fx.org.id, unitId: fx.units[0]!.id, deviceId: fx.devices[0]!.id, temperature: 9, recordedAt: new Date('2026-05-10T08:00:00Z') })
    expect((await partitionCounts(ctx.db, fx.org.id)).get('sensor_readings_default')).toBe(1)
    const before = entries(await storedRollups(ctx.db, fx.org.id, '1h'))
    expect(before).toHaveLength(1)
    const summary = await ctx.app.maintenance.run()
    expect(summary.moved).toEqual([{ partition: 'sensor_readings_2026_05', readings: 1 }])
    expect((await partitionCounts(ctx.db, fx.org.id)).get('sensor_readings_2026_05')).toBe(1)
    expect((await partitionCounts(ctx.db, fx.org.id)).get('sensor_readings_default')).toBe(0)
    expect(entries(await storedRollups(ctx.db, fx.org.id, '1h'))).toEqual(before)
  })

  it('drops whole expired partitions only, prunes rollups, and reports across the boundary from rollups', async () => {
    ctx.clock.set(NOW)
    const fx = await ctx.org({ units: 2, createdAt: new Date('2026-01-01T00:00:00Z') })
    const log = new ReadingLog()
    const list: StoredReading[] = []
    // Every 47 minutes (both units) from 2026-02-10 to now: odd positions inside hours and 5-minute buckets.
    for (let t = Date.parse('2026-02-10T00:03:00Z'), k = 0; t <= NOW.getTime(); t += 47 * 60_000, k++) {
      for (const unit of [0, 1]) list.push({ unitId: fx.units[unit]!.id, deviceId: fx.devices[unit]!.id, temperature: temps[(k + unit) % temps.length]!, recordedAt: new Date(t) })
    }
    for (let i = 0; i < list.length; i += 1000) {
      const chunk = list.slice(i, i + 1000)
      const res = await ctx.ingest(fx, chunk.map((r) => ({ deviceEui: fx.devices[fx.units.findIndex((u) => u.id === r.unitId)]!.deviceEui, temperature: r.temperature, recordedAt: r.recordedAt })))
      expect(res.statusCode).toBe(202)
      log.add(chunk)
    }
    const history = new Map(fx.units.map((u) => [u.id, [{ validFrom: -Infinity, tempMin: 2, tempMax: 8 }]]))
    const report = async (from: string, to: string) => (await ctx.app.inject({
      url: `/api/orgs/${fx.org.id}/reports/compliance?from=${from}&to=${to}`, headers: ctx.bearer({ [fx.org.id]: 'viewer' })
    })).json<ComplianceReport>()
    const acrossBefore = await report('2026-03-20T00:00:00.000Z', '2026-04-20T00:00:00.000Z')
    const countsBefore = await partitionCounts(ctx.db, fx.org.id)

    const summary = await ctx.app.maintenance.run()
    const cutoff = NOW.getTime() - 60 * DAY
    expect(summary.dropped).toEqual(expect.arrayContaining(['sensor_readings_2026_02', 'sensor_readings_2026_03']))
    expect(summary.horizons).toEqual({ readings: '2026-04-01T00:00:00.000Z', rollups: '2026-02-15T00:00:00.000Z' })
    const parts = await listPartitions(ctx.db)
    // Nothing left that ends by the cutoff; April straddles it and keeps every row, the older ones included.
    expect(parts.filter((p) => !p.isDefault && p.to !== null && p.to <= cutoff)).toEqual([])
    const countsAfter = await partitionCounts(ctx.db, fx.org.id)
    for (const month of ['2026_04', '2026_05', '2026_06']) expect(countsAfter.get(`sensor_readings_${month}`)).toBe(countsBefore.get(`sensor_readings_${month}`))
    expect(countsAfter.get('sensor_readings_2026_04')).toBe(log.all.filter((r) => r.recordedAt.toISOString().startsWith('2026-04')).length)
    const [raw] = await rows<{ n: number }>(ctx.db, sql`select count(*)::int as n from sensor_readings where organization_id = ${fx.org.id}`)
    expect(raw!.n).toBe(log.all.filter((r) => r.recordedAt.getTime() >= Date.parse('2026-04-01T00:00:00Z')).length)

    // Rollups: 5-minute ones go with the raw readings, hourly and daily ones at their own horizon.
    const keep = (horizon: string) => (r: StoredReading) => r.recordedAt.getTime() >= Date.parse(horizon)
    expect(entries(await storedRollups(ctx.db, fx.org.id, '5m'))).toEqual(entries(expectedRollups(log.all.filter(keep('2026-04-01T00:00:00Z')), history, '5m')))
    for (const width of ['1h', '1d'] as const) {
      expect(entries(await storedRollups(ctx.db, fx.org.id, width))).toEqual(entries(expectedRollups(log.all.filter(keep('2026-02-15T00:00:00Z')), history, width)))
    }

    // A report across the boundary is unchanged: whole hours and days come from rollups.
    expect(await report('2026-03-20T00:00:00.000Z', '2026-04-20T00:00:00.000Z')).toEqual(acrossBefore)
    const expectFrom = (body: ComplianceReport, from: number, to: number) => {
      for (const u of body.units) {
        const inside = log.all.filter((r) => r.unitId === u.unitId && r.recordedAt.getTime() >= from && r.recordedAt.getTime() < to)
        const inRange = inside.filter((r) => cents(r.temperature) >= 200 && cents(r.temperature) <= 800).length
        expect({ readings: u.readings, inRange: u.inRange }).toEqual({ readings: inside.length, inRange })
      }
    }
    expectFrom(acrossBefore, Date.parse('2026-03-20T00:00:00Z'), Date.parse('2026-04-20T00:00:00Z'))
    // Before the horizon a partial hour at the edge is no longer there: counted from the next whole hour.
    const odd = await report('2026-03-10T05:37:00.000Z', '2026-04-02T07:31:00.000Z')
    expectFrom(odd, Date.parse('2026-03-10T06:00:00Z'), Date.parse('2026-04-02T07:31:00Z'))

    // A rebuild never touches what raw readings no longer back; a second run drops nothing more.
    await ctx.app.rollups.rebuild({ orgId: fx.org.id })
    expect(entries(await storedRollups(ctx.db, fx.org.id, '1h'))).toEqual(entries(expectedRollups(log.all.filter(keep('2026-02-15T00:00:00Z')), history, '1h')))
    expect((await ctx.app.maintenance.run()).dropped).toEqual([])
  })
})
