import { beforeEach, describe, expect, it } from 'vitest'
import { and, asc, eq } from 'drizzle-orm'
import { alerts, devices, units, type Alert, type UnitState } from '../../../src/db/schema.js'
import type { AlertPayload, ChangeEvent } from '../../../src/features/changes/events.js'
import { createLifecycle, type LifecycleUnit } from '../../../src/features/monitoring/lifecycle.js'
import { backends, useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'

const T0 = new Date('2030-03-01T08:00:00.000Z')
const min = (n: number) => new Date(T0.getTime() + n * 60_000)

/*
 * The lifecycle alone (src/features/monitoring/lifecycle.ts): what the sweep feeds it when nothing is heard
 * (`goOffline`) and when time passes (`tick`). The sweep (src/features/monitoring/sweep.ts) decides nothing
 * of its own: these are its rules.
 */
describe('lifecycle: silence and the passing of time', () => {
  const unit = (state: UnitState, stateChangedAt = T0): LifecycleUnit =>
    ({ id: 'unit-1', organizationId: 'org-1', state, stateChangedAt, tempMin: 2, tempMax: 8 })
  const alert = (o: Partial<Alert> & Pick<Alert, 'type'>): Alert => ({
    id: `alert-${o.type}`,
    organizationId: 'org-1',
    unitId: 'unit-1',
    severity: 'warning',
    status: 'active',
    triggerTemperature: o.type === 'offline' ? null : 9,
    threshold: o.type === 'offline' ? null : 'temp_max',
    triggeredAt: T0,
    acknowledgedAt: null,
    resolvedAt: null,
    ...o
  })
  let ids = 0
  const opts = { confirmMinutes: 10, newId: () => `new-${++ids}` }
  beforeEach(() => { ids = 0 })

  describe('goOffline', () => {
    it('turns a unit offline with one warning offline alert, however often it is told', () => {
      const lc = createLifecycle(unit('normal'), [], opts)
      lc.goOffline(min(16))
      lc.goOffline(min(17))
      const r = lc.result()
      expect(r).toMatchObject({ previousState: 'normal', state: 'offline', stateChangedAt: min(16), updated: [] })
      expect(r.inserted).toEqual([{ ...alert({ type: 'offline', triggeredAt: min(16) }), id: 'new-1' }])
      expect(r.events).toEqual([{
        name: 'alertCreated',
        payload: { organizationId: 'org-1', alertId: 'new-1', unitId: 'unit-1', type: 'offline', severity: 'warning', status: 'active' }
      }])
    })

    it('opens no second offline alert when one is open already', () => {
      const open = alert({ type: 'offline', triggeredAt: min(5) })
      const lc = createLifecycle(unit('normal'), [open], opts)
      lc.goOffline(min(16))
      expect(lc.result()).toEqual({ previousState: 'normal', state: 'offline', stateChangedAt: min(16), inserted: [], updated: [], events: [] })
    })

    it('leaves an offline unit and its alert as they are', () => {
      const lc = createLifecycle(unit('offline', min(16)), [alert({ type: 'offline', triggeredAt: min(16) })], opts)
      lc.goOffline(min(40))
      expect(lc.result()).toEqual({ previousState: 'offline', state: 'offline', stateChangedAt: min(16), inserted: [], updated: [], events: [] })
    })

    it('never moves stateChangedAt backwards', () => {
      const lc = createLifecycle(unit('normal', min(20)), [], opts)
      lc.goOffline(min(16))
      expect(lc.result()).toMatchObject({ state: 'offline', stateChangedAt: min(20) })
    })

    it('keeps an open excursion open (and unescalated) until the next reading decides it', () => {
      const excursion = alert({ type: 'temperature_excursion', triggeredAt: T0 })
      const lc = createLifecycle(unit('too_hot'), [excursion], opts)
      lc.goOffline(min(16))
      // Confirmed by time, but the unit is no longer known to be too hot: nothing escalates while offline.
      lc.tick(min(30))
      let r = lc.result()
      expect(r.state).toBe('offline')
      expect(r.updated).toEqual([])
      expect(r.events.map((e) => [e.name, (e.payload as AlertPayload).type])).toEqual([['alertCreated', 'offline']])

      // Back in range: both the offline alert and the excursion resolve at the reading.
      lc.observe(5, min(31))
      r = lc.result()
      expect(r.state).toBe('normal')
      expect(r.events.map((e) => [e.name, (e.payload as AlertPayload).type])).toEqual([
        ['alertCreated', 'offline'], ['alertResolved', 'offline'], ['alertResolved', 'temperature_excursion']
      ])
      expect(r.updated).toEqual([expect.objectContaining({ id: excursion.id, status: 'resolved', severity: 'warning', resolvedAt: min(31) })])
    })
  })

  describe('tick', () => {
    it('escalates a warning excursion CONFIRM_MINUTES after it was raised, not before, and once', () => {
      const excursion = alert({ type: 'temperature_excursion', triggeredAt: T0 })
      const lc = createLifecycle(unit('too_hot'), [excursion], opts)
      lc.tick(new Date(min(10).getTime() - 1))
      expect(lc.result().events).toEqual([])
      lc.tick(min(10))
      lc.tick(min(11))
      const r = lc.result()
      expect(r.state).toBe('too_hot')
      expect(r.inserted).toEqual([])
      expect(r.updated).toEqual([{ ...excursion, severity: 'critical' }])
      expect(r.events).toEqual([{
        name: 'alertEscalated',
        payload: { organizationId: 'org-1', alertId: excursion.id, unitId: 'unit-1', type: 'temperature_excursion', severity: 'critical', status: 'active' }
      }])
    })

    it('escalates an acknowledged excursion too, keeping it acknowledged', () => {
      const excursion = alert({ type: 'temperature_excursion', threshold: 'temp_min', status: 'acknowledged', acknowledgedAt: min(1) })
      const lc = createLifecycle(unit('too_cold'), [excursion], opts)
      lc.tick(min(10))
      expect(lc.result().updated).toEqual([{ ...excursion, severity: 'critical' }])
    })

    it.each([
      ['the unit is back in range', 'normal' as const, 'temp_max' as const],
      ['the unit crossed to the other side', 'too_cold' as const, 'temp_max' as const],
      ['the unit is offline', 'offline' as const, 'temp_min' as const]
    ])('escalates nothing when %s', (_case, state, threshold) => {
      const lc = createLifecycle(unit(state), [alert({ type: 'temperature_excursion', threshold })], opts)
      lc.tick(min(60))
      expect(lc.result()).toMatchObject({ state, inserted: [], updated: [], events: [] })
    })

    it('escalates nothing that is critical already, and no offline alert', () => {
      const lc = createLifecycle(unit('too_hot'), [alert({ type: 'temperature_excursion', severity: 'critical' }), alert({ type: 'offline' })], opts)
      lc.tick(min(60))
      expect(lc.result()).toMatchObject({ inserted: [], updated: [], events: [] })
    })
  })
})

describe.each(backends)('alert lifecycle through the monitoring service ($name)', ({ name }) => {
  const ctx = useTestApp({ backend: name, clock: T0 })
  const emitted = ctx.emitted
  let fx: OrgFixture

  beforeEach(async () => {
    ctx.clock.set(T0)
    emitted.length = 0
    fx = await ctx.org({ units: 1, tempMin: 2, tempMax: 8, createdAt: T0 })
  })

  const unit = () => fx.units[0]!
  const device = () => fx.devices[0]!

  /**
   * Sends readings of the fixture's device (recorded `minutes` after T0) through the device API, which stores
   * and evaluates them (inline: no Redis here), the clock moved up to the newest one as a device sending live
   * would; returns the events.
   */
  async function read (...points: Array<[minutes: number, temperature: number]>): Promise<ChangeEvent[]> {
    const newest = min(Math.max(...points.map(([m]) => m)))
    if (newest > ctx.clock.now()) ctx.clock.set(newest)
    const before = emitted.length
    const res = await ctx.ingest(fx, points.map(([m, temperature]) => ({ deviceEui: device().deviceEui, temperature, recordedAt: min(m) })))
    expect(res.statusCode).toBe(202)
    return emitted.slice(before)
  }

  async function sweepAt (minutes: number): Promise<ChangeEvent[]> {
    ctx.clock.set(min(minutes))
    const before = emitted.length
    await ctx.app.monitoring.sweep()
    return emitted.slice(before).filter((e) => e.payload.organizationId === fx.org.id)
  }

  /**
   * Edits the unit's row and re-evaluates it in one unit of work, as a unit edit does
   * (src/features/management/service.ts); returns the events published after the commit.
   */
  async function edit (set: Partial<typeof units.$inferInsert>, unitId = unit().id): Promise<ChangeEvent[]> {
    const before = emitted.length
    const returned = await ctx.app.changes.commit(async (tx) => {
      await tx.update(units).set(set).where(eq(units.id, unitId))
      const events = await ctx.app.monitoring.reevaluateIn(tx, fx.org.id, unitId)
      return { value: events, events }
    })
    expect(emitted.slice(before)).toEqual(returned)
    return returned
  }

  const unitRow = async () => (await ctx.db.select().from(units).where(eq(units.id, unit().id)))[0]!
  const deviceRow = async () => (await ctx.db.select().from(devices).where(eq(devices.id, device().id)))[0]!
  const alertRows = async () => ctx.db.select().from(alerts).where(eq(alerts.unitId, unit().id)).orderBy(asc(alerts.triggeredAt))
  const names = (events: ChangeEvent[]) => events.map((e) => e.name)

  it('raises a warning excursion on the first reading above temp_max, with the payloads of src/features/changes/events.ts', async () => {
    expect(names(await read([0, 5]))).toEqual(['deviceStatusChange'])
    const events = await read([1, 9.25])
    expect(events).toEqual([
      {
        name: 'unitUpdate',
        payload: { organizationId: fx.org.id, unitId: unit().id, state: 'too_hot', previousState: 'normal', lastTemperature: 9.25, lastReadingAt: min(1).toISOString() }
      },
      {
        name: 'alertCreated',
        payload: { organizationId: fx.org.id, alertId: expect.any(String), unitId: unit().id, type: 'temperature_excursion', severity: 'warning', status: 'active' }
      }
    ])
    const [alert] = await alertRows()
    expect(alert).toMatchObject({
      id: (events[1]!.payload as { alertId: string }).alertId,
      type: 'temperature_excursion',
      severity: 'warning',
      status: 'active',
      triggerTemperature: 9.25,
      threshold: 'temp_max',
      triggeredAt: min(1),
      resolvedAt: null
    })
    expect(await unitRow()).toMatchObject({ state: 'too_hot', lastTemperature: 9.25, lastReadingAt: min(1), stateChangedAt: min(1) })
  })

  it('escalates to critical on a reading CONFIRM_MINUTES after the trigger, not before', async () => {
    await read([0, 9])
    expect(await read([9, 9.5])).toEqual([])
    const events = await read([10, 9.4])
    expect(events).toEqual([{ name: 'alertEscalated', payload: expect.objectContaining({ severity: 'critical', status: 'active', type: 'temperature_excursion' }) }])
    expect((await alertRows())[0]).toMatchObject({ severity: 'critical', status: 'active' })
    expect(await read([12, 9.6])).toEqual([]) // escalates once
  })

  it('escalates through the sweep (tick) when the unit stays out of range without new readings', async () => {
    await read([0, 1])
    expect(await sweepAt(9)).toEqual([])
    const events = await sweepAt(10)
    expect(events).toEqual([{
      name: 'alertEscalated',
      payload: { organizationId: fx.org.id, alertId: (await alertRows())[0]!.id, unitId: unit().id, type: 'temperature_excursion', severity: 'critical', status: 'active' }
    }])
    expect((await alertRows())[0]).toMatchObject({ severity: 'critical', threshold: 'temp_min' })
    expect(await sweepAt(11)).toEqual([])
  })

  it('resolves the excursion automatically once back in range past the hysteresis', async () => {
    await read([0, 9])
    expect(await read([1, 7.51])).toEqual([])
    expect((await unitRow()).state).toBe('too_hot')
    const events = await read([2, 7.5])
    expect(names(events)).toEqual(['unitUpdate', 'alertResolved'])
    expect(events[0]!.payload).toMatchObject({ state: 'normal', previousState: 'too_hot', lastTemperature: 7.5 })
    expect(events[1]!.payload).toMatchObject({ type: 'temperature_excursion', status: 'resolved', severity: 'warning' })
    expect(await alertRows()).toEqual([expect.objectContaining({ status: 'resolved', resolvedAt: min(2) })])
  })

  it('crossing from too_hot straight to too_cold resolves one excursion and opens another', async () => {
    await read([0, 9])
    const events = await read([1, 1.5])
    expect(names(events)).toEqual(['unitUpdate', 'alertResolved', 'alertCreated'])
    expect(events[0]!.payload).toMatchObject({ state: 'too_cold', previousState: 'too_hot' })
    const rows = await alertRows()
    expect(rows.map((a) => [a.threshold, a.status])).toEqual([['temp_max', 'resolved'], ['temp_min', 'active']])
  })

  it('turns a silent unit and its device offline (goOffline) with an offline alert; the next reading resolves it', async () => {
    await read([0, 5])
    expect((await deviceRow()).status).toBe('online')
    expect(await sweepAt(15)).toEqual([]) // exactly OFFLINE_AFTER_MINUTES: not yet
    const events = await sweepAt(16)
    expect(events).toEqual([
      { name: 'unitUpdate', payload: { organizationId: fx.org.id, unitId: unit().id, state: 'offline', previousState: 'normal', lastTemperature: 5, lastReadingAt: min(0).toISOString() } },
      { name: 'alertCreated', payload: { organizationId: fx.org.id, alertId: expect.any(String), unitId: unit().id, type: 'offline', severity: 'warning', status: 'active' } },
      { name: 'deviceStatusChange', payload: { organizationId: fx.org.id, deviceId: device().id, unitId: unit().id, status: 'offline' } }
    ])
    expect(await unitRow()).toMatchObject({ state: 'offline', stateChangedAt: min(16) })
    expect(await alertRows()).toEqual([expect.objectContaining({ type: 'offline', status: 'active', triggeredAt: min(16), triggerTemperature: null, threshold: null })])
    expect(await sweepAt(17)).toEqual([]) // nothing new to say

    const back = await read([17, 4])
    expect(back).toEqual([
      { name: 'deviceStatusChange', payload: { organizationId: fx.org.id, deviceId: device().id, unitId: unit().id, status: 'online' } },
      { name: 'unitUpdate', payload: expect.objectContaining({ state: 'normal', previousState: 'offline', lastTemperature: 4 }) },
      { name: 'alertResolved', payload: expect.objectContaining({ type: 'offline', status: 'resolved' }) }
    ])
    expect(await alertRows()).toEqual([expect.objectContaining({ type: 'offline', status: 'resolved', resolvedAt: min(17) })])
    expect(await deviceRow()).toMatchObject({ status: 'online', lastSeenAt: min(17) })
  })

  it('a unit silent while too hot goes offline with its excursion kept open and unescalated; its next reading decides it', async () => {
    await read([0, 9])
    // One sweep past both windows: the unit goes offline first, and an offline unit is on no side of its range.
    const events = await sweepAt(16)
    expect(events.map((e) => [e.name, e.payload.unitId === unit().id])).toEqual([['unitUpdate', true], ['alertCreated', true], ['deviceStatusChange', true]])
    expect(events[1]!.payload).toMatchObject({ type: 'offline' })
    expect(await sweepAt(30)).toEqual([])
    expect((await alertRows()).map((a) => [a.type, a.status, a.severity])).toEqual([
      ['temperature_excursion', 'active', 'warning'], ['offline', 'active', 'warning']
    ])

    // Still too hot when it reports again: the offline alert resolves and the confirmed excursion escalates.
    const back = await read([31, 9.5])
    expect(back).toEqual([
      { name: 'deviceStatusChange', payload: expect.objectContaining({ status: 'online' }) },
      { name: 'unitUpdate', payload: expect.objectContaining({ state: 'too_hot', previousState: 'offline', lastTemperature: 9.5 }) },
      { name: 'alertResolved', payload: expect.objectContaining({ type: 'offline', status: 'resolved' }) },
      { name: 'alertEscalated', payload: expect.objectContaining({ type: 'temperature_excursion', severity: 'critical', status: 'active' }) }
    ])
  })

  it('turns a unit that never reported offline once it is older than the window', async () => {
    const events = await sweepAt(16)
    expect(names(events)).toEqual(['unitUpdate', 'alertCreated'])
    expect(events[0]!.payload).toMatchObject({ state: 'offline', previousState: 'normal', lastTemperature: null, lastReadingAt: null })
  })

  it('leaves inactive units alone in the sweep', async () => {
    await ctx.db.update(units).set({ isActive: false }).where(eq(units.id, unit().id))
    expect(await sweepAt(60)).toEqual([])
    expect((await unitRow()).state).toBe('normal')
  })

  it('applies readings in recordedAt order whatever the order of the batch, and only once', async () => {
    const events = await read([3, 7.4], [1, 9], [0, 5], [2, 7.6])
    expect(names(events)).toEqual(['deviceStatusChange', 'alertCreated', 'alertResolved'])
    expect(await unitRow()).toMatchObject({ state: 'normal', lastTemperature: 7.4, lastReadingAt: min(3) })
    expect(await alertRows()).toEqual([expect.objectContaining({ triggeredAt: min(1), resolvedAt: min(3), triggerTemperature: 9 })])
    const before = emitted.length
    await ctx.app.monitoring.processUnits(fx.org.id, [unit().id])
    expect(emitted.length).toBe(before) // processing again only catches up: nothing to catch up
    expect(await read([3, 7.4])).toEqual([]) // a duplicate changes nothing
  })

  it('stores a late, older reading without moving the state backwards', async () => {
    await read([5, 5])
    expect(await read([1, 20])).toEqual([])
    expect(await unitRow()).toMatchObject({ state: 'normal', lastTemperature: 5, lastReadingAt: min(5) })
    expect(await alertRows()).toEqual([])
  })

  it('re-evaluates after a threshold change: hysteresis holds, a real change resolves', async () => {
    await read([0, 9])
    ctx.clock.set(min(2))
    expect(await edit({ tempMax: 9.2 })).toEqual([]) // 9 is within 0.5 of the new maximum: still too_hot
    expect(names(await edit({ tempMax: 12 }))).toEqual(['unitUpdate', 'alertResolved'])
    expect(await unitRow()).toMatchObject({ state: 'normal', stateChangedAt: min(2) })
    expect(names(await edit({ tempMax: 8.5 }))).toEqual(['unitUpdate', 'alertCreated'])
    const open = await ctx.db.select().from(alerts).where(and(eq(alerts.unitId, unit().id), eq(alerts.status, 'active')))
    expect(open).toEqual([expect.objectContaining({ threshold: 'temp_max', triggerTemperature: 9, triggeredAt: min(2) })])
  })

  it('resolves open alerts when a unit is deactivated', async () => {
    await read([0, 9])
    expect(names(await edit({ isActive: false }))).toEqual(['alertResolved'])
    expect((await alertRows())[0]!.status).toBe('resolved')
  })

  it('ignores units of another organization', async () => {
    const other = await ctx.org({ units: 1, createdAt: T0 })
    const otherUnit = other.units[0]!.id
    // A reading of the other organization's unit, stored but not evaluated, that would make it too hot.
    await ctx.app.ingestion.storeReadings(other.org.id, [{ deviceEui: other.devices[0]!.deviceEui, temperature: 20, recordedAt: T0.toISOString() }])
    await ctx.app.monitoring.processUnits(fx.org.id, [otherUnit])
    // A last temperature out of range, re-evaluated under the wrong organization.
    expect(await edit({ lastTemperature: 20, lastReadingAt: T0 }, otherUnit)).toEqual([])
    expect(emitted).toEqual([])
    const [row] = await ctx.db.select().from(units).where(eq(units.id, otherUnit))
    expect(row).toMatchObject({ state: 'normal', stateChangedAt: T0 })
    expect(await ctx.db.select().from(alerts).where(eq(alerts.unitId, otherUnit))).toEqual([])
  })
})
