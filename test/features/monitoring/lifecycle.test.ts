import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { and, asc, eq } from 'drizzle-orm'
import { pino } from 'pino'
import { alerts, devices, units } from '../../../src/db/schema.js'
import { createEventPublisher } from '../../../src/features/events/publisher.js'
import type { ChangeEvent } from '../../../src/features/events/types.js'
import { createIngestionService } from '../../../src/features/ingestion/service.js'
import { createMonitoringService } from '../../../src/features/monitoring/service.js'
import type { Database } from '../../../src/infra/postgres.js'
import { manualClock } from '../../../src/lib/clock.js'
import { backends, disposeDatabase } from '../../helpers/db.js'
import { createOrgFixture, type OrgFixture } from '../../helpers/fixtures.js'

const T0 = new Date('2030-03-01T08:00:00.000Z')
const min = (n: number) => new Date(T0.getTime() + n * 60_000)

describe.each(backends)('alert lifecycle through the monitoring service ($name)', (backend) => {
  let database: Database & { drop?: () => Promise<void> }
  let clock: ReturnType<typeof manualClock>
  let emitted: ChangeEvent[]
  let monitoring: ReturnType<typeof createMonitoringService>
  let ingestion: ReturnType<typeof createIngestionService>
  let fx: OrgFixture

  beforeAll(async () => { database = await backend.create() })
  afterAll(async () => { if (database) await disposeDatabase(database) })

  beforeEach(async () => {
    clock = manualClock(T0)
    const log = pino({ level: 'silent' })
    const events = createEventPublisher({ log })
    emitted = []
    events.onEmit((e) => { emitted.push(e) })
    monitoring = createMonitoringService({ db: database.db, clock, events, offlineAfterMinutes: 15, confirmMinutes: 10, log })
    ingestion = createIngestionService({ db: database.db, clock })
    fx = await createOrgFixture(database.db, { units: 1, tempMin: 2, tempMax: 8, createdAt: T0 })
  })

  const unit = () => fx.units[0]!
  const device = () => fx.devices[0]!

  /**
   * Stores readings of the fixture's device (recorded `minutes` after T0) and processes the unit, the
   * clock moved up to the newest one as a device sending live would; returns the events.
   */
  async function read (...points: Array<[minutes: number, temperature: number]>): Promise<ChangeEvent[]> {
    const newest = min(Math.max(...points.map(([m]) => m)))
    if (newest > clock.now()) clock.set(newest)
    const before = emitted.length
    const stored = await ingestion.storeReadings(fx.org.id, points.map(([m, temperature]) =>
      ({ deviceEui: device().deviceEui, temperature, recordedAt: min(m).toISOString() })))
    await monitoring.processUnits(fx.org.id, stored.unitIds)
    return emitted.slice(before)
  }

  async function sweepAt (minutes: number): Promise<ChangeEvent[]> {
    clock.set(min(minutes))
    const before = emitted.length
    await monitoring.sweep()
    return emitted.slice(before).filter((e) => e.payload.organizationId === fx.org.id)
  }

  const unitRow = async () => (await database.db.select().from(units).where(eq(units.id, unit().id)))[0]!
  const deviceRow = async () => (await database.db.select().from(devices).where(eq(devices.id, device().id)))[0]!
  const alertRows = async () => database.db.select().from(alerts).where(eq(alerts.unitId, unit().id)).orderBy(asc(alerts.triggeredAt))
  const names = (events: ChangeEvent[]) => events.map((e) => e.name)

  it('raises a warning excursion on the first reading above temp_max, with the SPEC §4 payloads', async () => {
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

  it('escalates through the sweep when the unit stays out of range without new readings', async () => {
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

  it('turns a silent unit and its device offline with an offline alert; the next reading resolves it', async () => {
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

  it('turns a unit that never reported offline once it is older than the window', async () => {
    const events = await sweepAt(16)
    expect(names(events)).toEqual(['unitUpdate', 'alertCreated'])
    expect(events[0]!.payload).toMatchObject({ state: 'offline', previousState: 'normal', lastTemperature: null, lastReadingAt: null })
  })

  it('leaves inactive units alone in the sweep', async () => {
    await database.db.update(units).set({ isActive: false }).where(eq(units.id, unit().id))
    expect(await sweepAt(60)).toEqual([])
    expect((await unitRow()).state).toBe('normal')
  })

  it('applies readings in recordedAt order whatever the order of the batch, and only once', async () => {
    const events = await read([3, 7.4], [1, 9], [0, 5], [2, 7.6])
    expect(names(events)).toEqual(['deviceStatusChange', 'alertCreated', 'alertResolved'])
    expect(await unitRow()).toMatchObject({ state: 'normal', lastTemperature: 7.4, lastReadingAt: min(3) })
    expect(await alertRows()).toEqual([expect.objectContaining({ triggeredAt: min(1), resolvedAt: min(3), triggerTemperature: 9 })])
    await monitoring.processUnits(fx.org.id, [unit().id])
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
    clock.set(min(2))
    await database.db.update(units).set({ tempMax: 9.2 }).where(eq(units.id, unit().id))
    const before = emitted.length
    await monitoring.reevaluateUnit(fx.org.id, unit().id)
    expect(emitted.slice(before)).toEqual([]) // 9 is within 0.5 of the new maximum: still too_hot
    await database.db.update(units).set({ tempMax: 12 }).where(eq(units.id, unit().id))
    await monitoring.reevaluateUnit(fx.org.id, unit().id)
    expect(names(emitted.slice(before))).toEqual(['unitUpdate', 'alertResolved'])
    expect(await unitRow()).toMatchObject({ state: 'normal', stateChangedAt: min(2) })
    await database.db.update(units).set({ tempMax: 8.5 }).where(eq(units.id, unit().id))
    await monitoring.reevaluateUnit(fx.org.id, unit().id)
    const open = await database.db.select().from(alerts).where(and(eq(alerts.unitId, unit().id), eq(alerts.status, 'active')))
    expect(open).toEqual([expect.objectContaining({ threshold: 'temp_max', triggerTemperature: 9, triggeredAt: min(2) })])
  })

  it('resolves open alerts when a unit is deactivated', async () => {
    await read([0, 9])
    await database.db.update(units).set({ isActive: false }).where(eq(units.id, unit().id))
    const before = emitted.length
    await monitoring.reevaluateUnit(fx.org.id, unit().id)
    expect(names(emitted.slice(before))).toEqual(['alertResolved'])
    expect((await alertRows())[0]!.status).toBe('resolved')
  })

  it('ignores units of another organization', async () => {
    const other = await createOrgFixture(database.db, { units: 1, createdAt: T0 })
    await monitoring.processUnits(fx.org.id, [other.units[0]!.id])
    await monitoring.reevaluateUnit(fx.org.id, other.units[0]!.id)
    expect(emitted).toEqual([])
  })
})
