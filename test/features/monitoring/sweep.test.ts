import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { and, eq, inArray, ne, sql } from 'drizzle-orm'
import { pino } from 'pino'
import { alerts, devices, units } from '../../../src/db/schema.js'
import { createEventPublisher } from '../../../src/features/events/publisher.js'
import type { ChangeEvent } from '../../../src/features/events/types.js'
import { createIngestionService } from '../../../src/features/ingestion/service.js'
import { createMonitoringService } from '../../../src/features/monitoring/service.js'
import type { Database } from '../../../src/infra/postgres.js'
import { manualClock } from '../../../src/lib/clock.js'
import { backends, createTestDatabase, disposeDatabase, type TestDatabase } from '../../helpers/db.js'
import { createOrgFixture } from '../../helpers/fixtures.js'

const T0 = new Date('2030-07-01T00:00:00.000Z')
const min = (n: number) => new Date(T0.getTime() + n * 60_000)

function services (database: Database, clock: ReturnType<typeof manualClock>) {
  const log = pino({ level: 'silent' })
  const events = createEventPublisher({ log })
  const emitted: ChangeEvent[] = []
  events.onEmit((e) => { emitted.push(e) })
  const monitoring = createMonitoringService({ db: database.db, clock, events, offlineAfterMinutes: 15, confirmMinutes: 10, log })
  return { monitoring, ingestion: createIngestionService({ db: database.db, clock }), emitted }
}

const count = (events: ChangeEvent[], name: ChangeEvent['name'], orgId: string) =>
  events.filter((e) => e.name === name && e.payload.organizationId === orgId).length

describe.each(backends)('sweep at scale ($name)', (backend) => {
  let database: Database & { drop?: () => Promise<void> }
  beforeAll(async () => { database = await backend.create() })
  afterAll(async () => { if (database) await disposeDatabase(database) })

  it('turns 1,000 silent units and devices offline in one sweep, once', async () => {
    const clock = manualClock(min(16))
    const { monitoring, emitted } = services(database, clock)
    const fx = await createOrgFixture(database.db, { units: 1000, createdAt: T0 })
    await database.db.update(devices).set({ status: 'online', lastSeenAt: T0 }).where(eq(devices.organizationId, fx.org.id))
    await monitoring.sweep()
    expect(count(emitted, 'unitUpdate', fx.org.id)).toBe(1000)
    expect(count(emitted, 'alertCreated', fx.org.id)).toBe(1000)
    expect(count(emitted, 'deviceStatusChange', fx.org.id)).toBe(1000)
    const [row] = await database.db.select({ n: sql<number>`count(*)::int` }).from(units)
      .where(and(eq(units.organizationId, fx.org.id), eq(units.state, 'offline')))
    expect(row!.n).toBe(1000)
    const [open] = await database.db.select({ n: sql<number>`count(*)::int` }).from(alerts)
      .where(and(eq(alerts.organizationId, fx.org.id), eq(alerts.type, 'offline'), ne(alerts.status, 'resolved')))
    expect(open!.n).toBe(1000)
    const before = emitted.length
    await monitoring.sweep()
    expect(emitted.length).toBe(before)
  })

  it('escalates only the excursions that are due and still out of range', async () => {
    const clock = manualClock(min(10))
    const { monitoring, emitted } = services(database, clock)
    const fx = await createOrgFixture(database.db, { units: 4, createdAt: T0 })
    const [hot, cold, recovered, recent] = fx.units.map((u) => u.id) as [string, string, string, string]
    await database.db.update(units).set({ state: 'too_hot', lastReadingAt: min(9), lastTemperature: 9 }).where(inArray(units.id, [hot, recent]))
    await database.db.update(units).set({ state: 'too_cold', lastReadingAt: min(9), lastTemperature: 1 }).where(eq(units.id, cold))
    await database.db.update(units).set({ state: 'normal', lastReadingAt: min(9), lastTemperature: 5 }).where(eq(units.id, recovered))
    const excursion = (unitId: string, threshold: 'temp_min' | 'temp_max', triggeredAt: Date) =>
      ({ organizationId: fx.org.id, unitId, type: 'temperature_excursion' as const, threshold, triggeredAt, triggerTemperature: 9 })
    await database.db.insert(alerts).values([
      excursion(hot, 'temp_max', T0),
      excursion(cold, 'temp_min', T0),
      excursion(recovered, 'temp_max', T0),
      excursion(recent, 'temp_max', min(1))
    ])
    await monitoring.sweep()
    const escalated = emitted.filter((e) => e.name === 'alertEscalated' && e.payload.organizationId === fx.org.id)
    expect(escalated.map((e) => e.payload.unitId).sort()).toEqual([hot, cold].sort())
    const critical = await database.db.select({ unitId: alerts.unitId }).from(alerts)
      .where(and(eq(alerts.organizationId, fx.org.id), eq(alerts.severity, 'critical')))
    expect(critical.map((a) => a.unitId).sort()).toEqual([hot, cold].sort())
  })
})

describe('concurrency on PostgreSQL', () => {
  let database: TestDatabase
  beforeAll(async () => { database = await createTestDatabase({ poolMax: 20 }) })
  afterAll(async () => { await database?.drop() })

  it('processing the same unit concurrently raises one alert and one unitUpdate', async () => {
    const clock = manualClock(min(1))
    const { monitoring, ingestion, emitted } = services(database, clock)
    const fx = await createOrgFixture(database.db, { units: 1, createdAt: T0 })
    const stored = await ingestion.storeReadings(fx.org.id, [{ deviceEui: fx.devices[0]!.deviceEui, temperature: 12, recordedAt: min(1).toISOString() }])
    await Promise.all(Array.from({ length: 8 }, () => monitoring.processUnits(fx.org.id, stored.unitIds)))
    expect(count(emitted, 'unitUpdate', fx.org.id)).toBe(1)
    expect(count(emitted, 'alertCreated', fx.org.id)).toBe(1)
    expect(count(emitted, 'deviceStatusChange', fx.org.id)).toBe(1)
    const rows = await database.db.select().from(alerts).where(eq(alerts.unitId, fx.units[0]!.id))
    expect(rows).toHaveLength(1)
  })

  it('a sweep racing fresh readings leaves every reporting unit online with no open offline alert', async () => {
    const clock = manualClock(min(16))
    const { monitoring, ingestion } = services(database, clock)
    const fx = await createOrgFixture(database.db, { units: 50, createdAt: T0 })
    const stored = await ingestion.storeReadings(fx.org.id, fx.devices.map((d) => ({ deviceEui: d.deviceEui, temperature: 5, recordedAt: min(16).toISOString() })))
    await Promise.all([monitoring.processUnits(fx.org.id, stored.unitIds), monitoring.sweep(), monitoring.sweep()])
    await monitoring.sweep()
    const states = await database.db.select({ state: units.state }).from(units).where(eq(units.organizationId, fx.org.id))
    expect(states.every((u) => u.state === 'normal')).toBe(true)
    const open = await database.db.select().from(alerts).where(and(eq(alerts.organizationId, fx.org.id), ne(alerts.status, 'resolved')))
    expect(open).toEqual([])
  })
})
