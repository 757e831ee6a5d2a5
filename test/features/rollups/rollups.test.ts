import { describe, expect, it } from 'vitest'
import { sql } from 'drizzle-orm'
import { rows } from '../../../src/infra/postgres.js'
import type { ComplianceReport } from '../../../src/features/reports/service.js'
import { backends, useTestApp, type TestContext } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'
import {
  ReadingLog, WIDTHS, cents, entries, expectedRollups, percent, storedRollups, thresholdsAt,
  type StoredReading, type ThresholdPeriod, type Width
} from '../../helpers/rollups.js'

// Rollups against a recomputation in JavaScript from the readings each test sent, under the rule "each reading is
// judged by the thresholds its unit had when it was recorded".

const NOW = new Date('2026-04-01T00:12:00.000Z')
const MIN = 60_000
const HOUR = 60 * MIN
const temps = [2, 8, 1.99, 8.01, 5.55, -0.5, 12.25, 4.01, 7.99, 3.33]

interface Sent { unit: number, temperature: number, at: number }

function setup (ctx: TestContext) {
  const since: ThresholdPeriod[] = [{ validFrom: -Infinity, tempMin: 2, tempMax: 8 }]
  return async () => {
    const fx = await ctx.org({ units: 2, tempMin: 2, tempMax: 8, createdAt: new Date('2026-01-01T00:00:00Z') })
    const log = new ReadingLog()
    const history = new Map<string, ThresholdPeriod[]>(fx.units.map((u) => [u.id, [...since]]))
    const send = async (list: Sent[]) => {
      const res = await ctx.ingest(fx, list.map((r) => ({ deviceEui: fx.devices[r.unit]!.deviceEui, temperature: r.temperature, recordedAt: new Date(r.at) })))
      expect(res.statusCode).toBe(202)
      log.add(toStored(fx, list))
      return res.json() as { accepted: number, duplicates: number }
    }
    return { fx, log, history, send }
  }
}

function toStored (fx: OrgFixture, list: Sent[]): StoredReading[] {
  return list.map((r) => ({ unitId: fx.units[r.unit]!.id, deviceId: fx.devices[r.unit]!.id, temperature: r.temperature, recordedAt: new Date(r.at) }))
}

async function expectRollupsMatch (ctx: TestContext, orgId: string, readings: StoredReading[], history: Map<string, ThresholdPeriod[]>): Promise<void> {
  for (const width of Object.keys(WIDTHS) as Width[]) {
    expect(entries(await storedRollups(ctx.db, orgId, width)), `${width} rollups`).toEqual(entries(expectedRollups(readings, history, width)))
  }
}

describe.each(backends)('rollups on $name', ({ name }) => {
  const ctx = useTestApp({ backend: name, clock: NOW, poolMax: 8 })
  const fresh = setup(ctx)

  it('count out-of-order and duplicate readings once, the first stored value winning', async () => {
    ctx.clock.set(NOW)
    const { fx, log, history, send } = await fresh()
    const recent: Sent[] = []
    for (let k = 0; k < 40; k++) recent.push({ unit: k % 2, temperature: temps[k % temps.length]!, at: NOW.getTime() - 3 * HOUR + k * 2.5 * MIN })
    expect(await send(recent)).toEqual({ accepted: 40, duplicates: 0 })
    // Older readings, newest first, mixed with repeats of stored readings (other temperatures) and of each other.
    const late: Sent[] = []
    for (let k = 30; k >= 0; k--) late.push({ unit: k % 2, temperature: temps[(k * 7) % temps.length]!, at: NOW.getTime() - 6 * HOUR + k * 4 * MIN })
    late.push({ ...recent[3]!, temperature: 30 }, { ...recent[10]!, temperature: -30 }, { ...late[0]! }, { ...late[5]!, temperature: 99 })
    expect(await send(late)).toEqual({ accepted: 31, duplicates: 4 })
    await expectRollupsMatch(ctx, fx.org.id, log.all, history)
  })

  it('split one batch across 5-minute, hour, day and month boundaries, each month in a partition of its own', async () => {
    ctx.clock.set(NOW)
    const { fx, log, history, send } = await fresh()
    const batch: Sent[] = []
    // 2026-03-31T23:49:30 to 2026-04-01T00:11:30, every 30 s, both units.
    for (let k = 0; k < 45; k++) for (const unit of [0, 1]) batch.push({ unit, temperature: temps[(k + unit) % temps.length]!, at: NOW.getTime() - 22.5 * MIN + k * 30_000 })
    expect(await send(batch)).toEqual({ accepted: 90, duplicates: 0 })
    await expectRollupsMatch(ctx, fx.org.id, log.all, history)
    const parts = await rows<{ name: string, n: number }>(ctx.db, sql`
      select c.relname::text as name, (select count(*) from sensor_readings r where r.tableoid = c.oid and r.organization_id = ${fx.org.id})::int as n
      from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'sensor_readings'::regclass`)
    const count = (n: string) => parts.find((p) => p.name === n)?.n
    expect(count('sensor_readings_2026_03')).toBe(log.all.filter((r) => r.recordedAt < new Date('2026-04-01T00:00:00Z')).length)
    expect(count('sensor_readings_2026_04')).toBe(log.all.filter((r) => r.recordedAt >= new Date('2026-04-01T00:00:00Z')).length)
    expect(count('sensor_readings_default')).toBe(0)
  })

  it('lose no update when batches for the same unit and buckets run at once', async () => {
    ctx.clock.set(NOW)
    const { fx, log, history, send } = await fresh()
    const batches: Sent[][] = Array.from({ length: 6 }, () => [])
    // Six batches interleaved minute by minute over the same buckets of both units, each repeating a reading of
    // the next batch with the same value (whichever commits first, the stored value is the same).
    for (let k = 0; k < 180; k++) {
      const r = { unit: k % 2, temperature: temps[k % temps.length]!, at: NOW.getTime() - 2 * HOUR + k * 20_000 }
      batches[k % 6]!.push(r)
      if (k % 9 === 0) batches[(k + 1) % 6]!.push({ ...r })
    }
    const results = await Promise.all(batches.map((b) => send(b)))
    expect(results.reduce((s, r) => s + r.accepted, 0)).toBe(180)
    await expectRollupsMatch(ctx, fx.org.id, log.all, history)
  })

  it('judge each reading by the thresholds of its time when they change mid-window; dashboard and report agree', async () => {
    const changeAt = NOW.getTime() - 2 * HOUR - 2.5 * MIN // inside a 5-minute bucket
    ctx.clock.set(new Date(changeAt))
    const { fx, log, history, send } = await fresh()
    const before: Sent[] = []
    for (let k = 0; k < 120; k++) before.push({ unit: k % 2, temperature: temps[k % temps.length]!, at: changeAt - 20 * HOUR + k * 10 * MIN })
    // Stamped up to 5 minutes ahead of the clock: stored before the change, recorded after it.
    for (const m of [0.5, 1.5, 2.5, 3.5, 4.5]) before.push({ unit: 0, temperature: 7, at: changeAt + m * MIN })
    await send(before)
    const patch = await ctx.app.inject({
      method: 'PATCH',
      url: `/api/orgs/${fx.org.id}/units/${fx.units[0]!.id}`,
      headers: ctx.bearer({ [fx.org.id]: 'manager' }),
      payload: { tempMin: 3, tempMax: 6 }
    })
    expect(patch.statusCode).toBe(200)
    history.get(fx.units[0]!.id)!.push({ validFrom: changeAt, tempMin: 3, tempMax: 6 })
    ctx.clock.set(NOW)
    // Late readings from before the change arrive after it, mixed with readings after it.
    const after: Sent[] = []
    for (let k = 0; k < 80; k++) after.push({ unit: k % 2, temperature: temps[(k * 3) % temps.length]!, at: changeAt - 30 * MIN + k * 1.5 * MIN })
    await send(after)
    await expectRollupsMatch(ctx, fx.org.id, log.all, history)

    const judged = log.all.map((r) => {
      const t = thresholdsAt(history.get(r.unitId)!, r.recordedAt.getTime())
      return { ...r, inRange: cents(r.temperature) >= cents(t.tempMin) && cents(r.temperature) <= cents(t.tempMax) }
    })
    const windowed = judged.filter((r) => r.recordedAt.getTime() > NOW.getTime() - 24 * HOUR && r.recordedAt.getTime() <= NOW.getTime())
    expect(await ctx.app.dashboard.queries.compliancePercentage(fx.org.id)).toBe(percent(windowed.filter((r) => r.inRange).length, windowed.length))
    const trend = await ctx.app.dashboard.queries.temperatureTrends(fx.org.id, fx.units[0]!.id)
    const mine = windowed.filter((r) => r.unitId === fx.units[0]!.id)
    const buckets = [...new Set(mine.map((r) => Math.floor(r.recordedAt.getTime() / WIDTHS['5m']) * WIDTHS['5m']))].sort((a, b) => a - b)
    expect(trend!.points.map((p) => p.timestamp)).toEqual(buckets.map((b) => new Date(b).toISOString()))
    for (const p of trend!.points) {
      const inBucket = mine.filter((r) => Math.floor(r.recordedAt.getTime() / WIDTHS['5m']) * WIDTHS['5m'] === Date.parse(p.timestamp))
      const t = inBucket.map((r) => ({ c: cents(r.temperature), th: thresholdsAt(history.get(r.unitId)!, r.recordedAt.getTime()) }))
      const hot = t.some((x) => x.c > cents(x.th.tempMax))
      const cold = t.some((x) => x.c < cents(x.th.tempMin))
      expect(p.alarmState, p.timestamp).toBe(hot ? 'too_hot' : cold ? 'too_cold' : 'normal')
    }

    const from = new Date(changeAt - 3 * HOUR - 7 * MIN - 30_000)
    const to = new Date(NOW.getTime() - 3 * MIN)
    const res = await ctx.app.inject({ url: `/api/orgs/${fx.org.id}/reports/compliance?from=${from.toISOString()}&to=${to.toISOString()}`, headers: ctx.bearer({ [fx.org.id]: 'viewer' }) })
    const report = res.json<ComplianceReport>()
    for (const u of report.units) {
      const inside = judged.filter((r) => r.unitId === u.unitId && r.recordedAt >= from && r.recordedAt < to)
      expect({ readings: u.readings, inRange: u.inRange }, u.unitName).toEqual({ readings: inside.length, inRange: inside.filter((r) => r.inRange).length })
    }
  })

  it('rebuild from raw readings, idempotently, only inside the range asked for', async () => {
    ctx.clock.set(NOW)
    const { fx, log, history, send } = await fresh()
    const batch: Sent[] = []
    for (let k = 0; k < 150; k++) batch.push({ unit: k % 2, temperature: temps[k % temps.length]!, at: NOW.getTime() - 70 * HOUR + k * 28 * MIN })
    await send(batch)
    const corrupt = async () => {
      await ctx.db.execute(sql`update reading_rollups_1h set readings = readings + 5 where organization_id = ${fx.org.id}`)
      await ctx.db.execute(sql`update reading_rollups_1d set above = above + 1 where organization_id = ${fx.org.id}`)
      await ctx.db.execute(sql`delete from reading_rollups_5m where organization_id = ${fx.org.id} and bucket < ${new Date(NOW.getTime() - 24 * HOUR).toISOString()}::timestamptz`)
    }
    await corrupt()
    const rebuilt = await ctx.app.rollups.rebuild({ orgId: fx.org.id })
    expect(rebuilt).toMatchObject([{ orgId: fx.org.id, from: null, to: null, readings: 150 }])
    await expectRollupsMatch(ctx, fx.org.id, log.all, history)
    await ctx.app.rollups.rebuild({ orgId: fx.org.id })
    await expectRollupsMatch(ctx, fx.org.id, log.all, history)

    // A range: whole UTC days around it are rebuilt, the rest is left as it is.
    await corrupt()
    const day = new Date('2026-03-30T10:00:00Z')
    const [one] = await ctx.app.rollups.rebuild({ orgId: fx.org.id, from: day, to: new Date(day.getTime() + HOUR) })
    expect(one).toMatchObject({ from: '2026-03-30T00:00:00.000Z', to: '2026-03-31T00:00:00.000Z' })
    const inDay = (key: string) => { const ms = Number(key.split('|')[1]); return ms >= Date.parse('2026-03-30T00:00:00Z') && ms < Date.parse('2026-03-31T00:00:00Z') }
    const stored = await storedRollups(ctx.db, fx.org.id, '1h')
    const expected = expectedRollups(log.all, history, '1h')
    for (const [key, bucket] of expected) {
      if (inDay(key)) expect(stored.get(key), key).toEqual(bucket)
      else expect(stored.get(key)!.readings, key).toBe(bucket.readings + 5)
    }
  })
})
