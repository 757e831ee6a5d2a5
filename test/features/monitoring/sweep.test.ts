import { describe, expect, it } from 'vitest'
import { and, eq, inArray, ne, sql } from 'drizzle-orm'
import { alerts, devices, units } from '../../../src/db/schema.js'
import type { ChangeEvent } from '../../../src/features/changes/events.js'
import { backends, useTestApp } from '../../helpers/fixture.js'

const T0 = new Date('2030-07-01T00:00:00.000Z')
const min = (n: number) => new Date(T0.getTime() + n * 60_000)

const count = (events: ChangeEvent[], name: ChangeEvent['name'], orgId: string) =>
  events.filter((e) => e.name === name && e.payload.organizationId === orgId).length

// The sweep (src/features/monitoring/sweep.ts) through the app's monitoring service; what it does to each unit is
// the lifecycle's goOffline and tick (test/features/monitoring/lifecycle.test.ts tests those rules alone).
describe.each(backends)('sweep at scale ($name)', ({ name }) => {
  const ctx = useTestApp({ backend: name, clock: T0 })

  it('turns 1,000 silent units and devices offline in one sweep, each with an offline alert, once', async () => {
    ctx.clock.set(min(16))
    const emitted = ctx.emitted
    const fx = await ctx.org({ units: 1000, createdAt: T0 })
    await ctx.db.update(devices).set({ status: 'online', lastSeenAt: T0 }).where(eq(devices.organizationId, fx.org.id))
    await ctx.app.monitoring.sweep()
    expect(count(emitted, 'unitUpdate', fx.org.id)).toBe(1000)
    expect(count(emitted, 'alertCreated', fx.org.id)).toBe(1000)
    expect(count(emitted, 'deviceStatusChange', fx.org.id)).toBe(1000)
    expect(emitted.filter((e) => e.payload.organizationId === fx.org.id && e.name === 'alertCreated').every((e) => 'type' in e.payload && e.payload.type === 'offline')).toBe(true)
    const [row] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(units)
      .where(and(eq(units.organizationId, fx.org.id), eq(units.state, 'offline'), eq(units.stateChangedAt, min(16))))
    expect(row!.n).toBe(1000)
    const [open] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(alerts)
      .where(and(eq(alerts.organizationId, fx.org.id), eq(alerts.type, 'offline'), ne(alerts.status, 'resolved')))
    expect(open!.n).toBe(1000)
    const [offlineDevices] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(devices)
      .where(and(eq(devices.organizationId, fx.org.id), eq(devices.status, 'offline')))
    expect(offlineDevices!.n).toBe(1000)
    const before = emitted.length
    await ctx.app.monitoring.sweep()
    expect(emitted.length).toBe(before)
  })

  it('opens no second offline alert for a silent unit that has one open already', async () => {
    ctx.clock.set(min(16))
    const fx = await ctx.org({ units: 1, createdAt: T0 })
    const unitId = fx.units[0]!.id
    await ctx.db.insert(alerts).values({ organizationId: fx.org.id, unitId, type: 'offline', triggeredAt: T0 })
    const before = ctx.emitted.length
    await ctx.app.monitoring.sweep()
    expect(ctx.emitted.slice(before).filter((e) => e.payload.organizationId === fx.org.id)).toEqual([
      { name: 'unitUpdate', payload: expect.objectContaining({ unitId, state: 'offline', previousState: 'normal' }) }
    ])
    expect(await ctx.db.select().from(alerts).where(eq(alerts.unitId, unitId))).toEqual([expect.objectContaining({ type: 'offline', status: 'active', triggeredAt: T0 })])
  })

  it('escalates only the excursions that are due and whose unit is still on that side of its range', async () => {
    ctx.clock.set(min(10))
    const emitted = ctx.emitted
    const fx = await ctx.org({ units: 8, createdAt: T0 })
    const [hot, cold, recovered, recent, crossed, offline, inactive, acknowledged] = fx.units.map((u) => u.id) as
      [string, string, string, string, string, string, string, string]
    await ctx.db.update(units).set({ state: 'too_hot', lastReadingAt: min(9), lastTemperature: 9 }).where(inArray(units.id, [hot, recent, inactive]))
    await ctx.db.update(units).set({ state: 'too_cold', lastReadingAt: min(9), lastTemperature: 1 }).where(inArray(units.id, [cold, crossed, acknowledged]))
    await ctx.db.update(units).set({ state: 'normal', lastReadingAt: min(9), lastTemperature: 5 }).where(eq(units.id, recovered))
    // Offline (silent while too hot, a reading not yet heard): on no side of its range until it reports.
    await ctx.db.update(units).set({ state: 'offline', lastReadingAt: min(9), lastTemperature: 9 }).where(eq(units.id, offline))
    await ctx.db.update(units).set({ isActive: false }).where(eq(units.id, inactive))
    const excursion = (unitId: string, threshold: 'temp_min' | 'temp_max', triggeredAt: Date) =>
      ({ organizationId: fx.org.id, unitId, type: 'temperature_excursion' as const, threshold, triggeredAt, triggerTemperature: 9 })
    await ctx.db.insert(alerts).values([
      excursion(hot, 'temp_max', T0),
      excursion(cold, 'temp_min', T0),
      excursion(recovered, 'temp_max', T0),
      excursion(recent, 'temp_max', min(1)),
      excursion(crossed, 'temp_max', T0),
      excursion(offline, 'temp_max', T0),
      excursion(inactive, 'temp_max', T0),
      { ...excursion(acknowledged, 'temp_min', T0), status: 'acknowledged' as const, acknowledgedAt: min(2) }
    ])
    await ctx.app.monitoring.sweep()
    const escalated = emitted.filter((e) => e.name === 'alertEscalated' && e.payload.organizationId === fx.org.id)
    expect(escalated.map((e) => e.payload.unitId).sort()).toEqual([hot, cold, acknowledged].sort())
    expect(escalated.every((e) => 'severity' in e.payload && e.payload.severity === 'critical')).toBe(true)
    const critical = await ctx.db.select({ unitId: alerts.unitId, status: alerts.status }).from(alerts)
      .where(and(eq(alerts.organizationId, fx.org.id), eq(alerts.severity, 'critical')))
    expect(critical.map((a) => a.unitId).sort()).toEqual([hot, cold, acknowledged].sort())
    expect(critical.find((a) => a.unitId === acknowledged)!.status).toBe('acknowledged')
    // Nothing else about those units changed: the sweep escalates, the next reading decides the rest.
    expect(emitted.filter((e) => e.payload.organizationId === fx.org.id && e.name !== 'alertEscalated')).toEqual([])
    const before = emitted.length
    await ctx.app.monitoring.sweep()
    expect(emitted.slice(before).filter((e) => e.payload.organizationId === fx.org.id)).toEqual([]) // once
  })
})

describe('concurrency on PostgreSQL', () => {
  const ctx = useTestApp({ clock: T0, poolMax: 20 })

  it('processing the same unit concurrently raises one alert and one unitUpdate', async () => {
    ctx.clock.set(min(1))
    const fx = await ctx.org({ units: 1, createdAt: T0 })
    // Stored without being evaluated (the first half of POST /api/ingest/readings), then evaluated 8 times at once.
    const stored = await ctx.app.ingestion.storeReadings(fx.org.id, [{ deviceEui: fx.devices[0]!.deviceEui, temperature: 12, recordedAt: min(1).toISOString() }])
    await Promise.all(Array.from({ length: 8 }, () => ctx.app.monitoring.processUnits(fx.org.id, stored.unitIds)))
    expect(count(ctx.emitted, 'unitUpdate', fx.org.id)).toBe(1)
    expect(count(ctx.emitted, 'alertCreated', fx.org.id)).toBe(1)
    expect(count(ctx.emitted, 'deviceStatusChange', fx.org.id)).toBe(1)
    const rows = await ctx.db.select().from(alerts).where(eq(alerts.unitId, fx.units[0]!.id))
    expect(rows).toHaveLength(1)
  })

  it('a sweep racing fresh readings leaves every reporting unit online with no open offline alert', async () => {
    ctx.clock.set(min(16))
    const fx = await ctx.org({ units: 50, createdAt: T0 })
    const stored = await ctx.app.ingestion.storeReadings(fx.org.id, fx.devices.map((d) => ({ deviceEui: d.deviceEui, temperature: 5, recordedAt: min(16).toISOString() })))
    const { monitoring } = ctx.app
    await Promise.all([monitoring.processUnits(fx.org.id, stored.unitIds), monitoring.sweep(), monitoring.sweep()])
    await monitoring.sweep()
    const states = await ctx.db.select({ state: units.state }).from(units).where(eq(units.organizationId, fx.org.id))
    expect(states.every((u) => u.state === 'normal')).toBe(true)
    const open = await ctx.db.select().from(alerts).where(and(eq(alerts.organizationId, fx.org.id), ne(alerts.status, 'resolved')))
    expect(open).toEqual([])
  })

  it('skips the rows another transaction holds (SKIP LOCKED) and takes them on the next sweep', async () => {
    ctx.clock.set(min(16))
    const fx = await ctx.org({ units: 3, createdAt: T0 })
    const [held, free, hot] = fx.units.map((u) => u.id) as [string, string, string]
    const [heldDevice, freeDevice] = fx.devices.map((d) => d.id) as [string, string]
    await ctx.db.update(devices).set({ status: 'online', lastSeenAt: T0 }).where(inArray(devices.id, [heldDevice, freeDevice]))
    // `hot` reported a minute ago (not silent) and has a confirmed excursion: due for escalation.
    await ctx.db.update(units).set({ state: 'too_hot', lastReadingAt: min(15), lastTemperature: 9 }).where(eq(units.id, hot))
    const [excursion] = await ctx.db.insert(alerts).values({
      organizationId: fx.org.id, unitId: hot, type: 'temperature_excursion', threshold: 'temp_max', triggerTemperature: 9, triggeredAt: T0
    }).returning()
    const mine = (events: ChangeEvent[]) => events.filter((e) => e.payload.organizationId === fx.org.id)

    // Another transaction (ingestion, say) holds `held`'s unit and device rows and `hot`'s alert while a sweep runs.
    let release!: () => void
    const released = new Promise<void>((resolve) => { release = resolve })
    let locked!: () => void
    const holding = new Promise<void>((resolve) => { locked = resolve })
    const holder = ctx.db.transaction(async (tx) => {
      await tx.select({ id: units.id }).from(units).where(eq(units.id, held)).for('update')
      await tx.select({ id: devices.id }).from(devices).where(eq(devices.id, heldDevice)).for('update')
      await tx.select({ id: alerts.id }).from(alerts).where(eq(alerts.id, excursion!.id)).for('update')
      locked()
      await released
    })
    await holding
    const before = ctx.emitted.length
    try {
      // A sweep that waited for the locks would wait for this test: the deadline turns that into a failure.
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        ctx.app.monitoring.sweep(),
        new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('the sweep waited for locked rows')), 10_000) })
      ]).finally(() => clearTimeout(timer))
    } finally {
      release()
      await holder
    }
    const first = mine(ctx.emitted.slice(before))
    expect(first.map((e) => [e.name, e.payload.unitId])).toEqual([['unitUpdate', free], ['alertCreated', free], ['deviceStatusChange', free]])
    const stateOf = async (id: string) => (await ctx.db.select({ state: units.state }).from(units).where(eq(units.id, id)))[0]!.state
    expect(await stateOf(held)).toBe('normal')
    expect((await ctx.db.select().from(alerts).where(eq(alerts.id, excursion!.id)))[0]!.severity).toBe('warning')

    // Released: the next sweep catches up on exactly what was skipped.
    const mark = ctx.emitted.length
    await ctx.app.monitoring.sweep()
    const second = mine(ctx.emitted.slice(mark))
    expect(second.map((e) => [e.name, e.payload.unitId])).toEqual([
      ['unitUpdate', held], ['alertCreated', held], ['deviceStatusChange', held], ['alertEscalated', hot]
    ])
    expect(await stateOf(held)).toBe('offline')
    expect((await ctx.db.select().from(alerts).where(eq(alerts.id, excursion!.id)))[0]!.severity).toBe('critical')
  })
})
