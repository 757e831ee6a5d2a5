import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { and, eq, gte } from 'drizzle-orm'
import type { App } from '../../src/app.js'
import { alerts, apiKeys, devices, units } from '../../src/db/schema.js'
import { generateApiKey } from '../../src/features/auth/tokens.js'
import { manualClock } from '../../src/lib/clock.js'
import { seedDataset } from '../../src/tools/dataset.js'
import { createLiveSimulator } from '../../src/tools/live-simulator.js'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase, type TestDatabase } from '../helpers/db.js'

describe('live simulator against a listening app', () => {
  const clock = manualClock(new Date('2026-04-02T09:00:00.000Z'))
  let database: TestDatabase
  let app: App
  let orgId: string
  let key: string
  const lines: string[] = []

  beforeAll(async () => {
    database = await createTestDatabase()
    const seeded = await seedDataset(database.db, { orgs: 1, units: 6, hours: 1, intervalSeconds: 60, seed: 3, offlineAfterMinutes: 15, confirmMinutes: 10 }, clock)
    orgId = seeded.orgIds[0]!
    const k = generateApiKey()
    key = k.key
    await database.db.insert(apiKeys).values({ organizationId: orgId, name: 'sim', hash: k.hash })
    app = await buildTestApp({ database, clock })
    await app.listen({ port: 0, host: '127.0.0.1' })
  })
  afterAll(async () => { await app?.close(); await database?.drop() })

  it('posts every device but the silent one each tick, and its excursions open, escalate and resolve alerts', async () => {
    const fleet = await database.db.select({
      deviceEui: devices.deviceEui,
      unitId: units.id,
      unitName: units.name,
      unitType: units.unitType,
      tempMin: units.tempMin,
      tempMax: units.tempMax,
      state: units.state
    }).from(devices).innerJoin(units, eq(units.id, devices.unitId)).where(eq(devices.organizationId, orgId))
    const silent = fleet.find((d) => d.state === 'offline')!
    expect(silent).toBeDefined()
    const start = clock.now()
    const sim = createLiveSimulator({
      baseUrl: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
      apiKey: key,
      devices: fleet,
      silent: new Set([silent.deviceEui]),
      intervalMs: 60_000,
      confirmMinutes: 10,
      clock,
      seed: 11,
      log: (line) => lines.push(line)
    })

    // Ninety simulated minutes, a batch a minute, each followed by a sweep (escalation is time-driven).
    for (let i = 0; i < 90; i++) {
      clock.advance(60_000)
      const res = await sim.tick()
      expect(res).toMatchObject({ status: 202, sent: fleet.length - 1, accepted: fleet.length - 1, duplicates: 0 })
      await app.monitoring.sweep()
    }
    await sim.stop()

    const raised = await database.db.select().from(alerts)
      .where(and(eq(alerts.organizationId, orgId), eq(alerts.type, 'temperature_excursion'), gte(alerts.triggeredAt, start)))
    expect(raised.filter((a) => a.status === 'resolved').length).toBeGreaterThanOrEqual(3)
    expect(raised.some((a) => a.severity === 'critical' && a.status === 'resolved')).toBe(true)
    expect(lines.some((l) => l.includes('door left open'))).toBe(true)

    const [stillSilent] = await database.db.select({ state: units.state }).from(units).where(eq(units.id, silent.unitId))
    expect(stillSilent!.state).toBe('offline')
    const others = await database.db.select({ id: units.id, state: units.state, lastReadingAt: units.lastReadingAt })
      .from(units).where(eq(units.organizationId, orgId))
    for (const u of others.filter((o) => o.id !== silent.unitId)) {
      expect(u.state).not.toBe('offline')
      expect(u.lastReadingAt!.getTime()).toBe(clock.now().getTime())
    }
  }, 120_000)
})
