import { beforeAll, describe, expect, it } from 'vitest'
import { and, eq, gte } from 'drizzle-orm'
import { alerts, apiKeys, devices, units } from '../../src/db/schema.js'
import { generateApiKey } from '../../src/features/auth/tokens.js'
import { seedDataset } from '../../src/tools/dataset.js'
import { createLiveSimulator } from '../../src/tools/live-simulator.js'
import { useTestApp } from '../helpers/fixture.js'

describe('live simulator against a listening app', () => {
  const ctx = useTestApp({ clock: new Date('2026-04-02T09:00:00.000Z'), listen: true })
  let orgId: string
  let key: string
  const lines: string[] = []

  beforeAll(async () => {
    // OFFLINE_AFTER_MINUTES and CONFIRM_MINUTES as the app runs them (their defaults, src/config.ts).
    expect(ctx.app.config).toMatchObject({ OFFLINE_AFTER_MINUTES: 15, CONFIRM_MINUTES: 10 })
    const seeded = await seedDataset(ctx.db, { orgs: 1, units: 6, hours: 1, intervalSeconds: 60, seed: 3, offlineAfterMinutes: 15, confirmMinutes: 10 }, ctx.clock)
    orgId = seeded.orgIds[0]!
    const k = generateApiKey()
    key = k.key
    await ctx.db.insert(apiKeys).values({ organizationId: orgId, name: 'sim', hash: k.hash })
  })

  it('posts every device but the silent one each tick, and its excursions open, escalate and resolve alerts', async () => {
    const fleet = await ctx.db.select({
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
    const start = ctx.clock.now()
    const sim = createLiveSimulator({
      baseUrl: ctx.url,
      apiKey: key,
      devices: fleet,
      silent: new Set([silent.deviceEui]),
      intervalMs: 60_000,
      confirmMinutes: 10,
      clock: ctx.clock,
      seed: 11,
      log: (line) => lines.push(line)
    })

    // Ninety simulated minutes, a batch a minute, each followed by a sweep (escalation is time-driven).
    for (let i = 0; i < 90; i++) {
      ctx.clock.advance(60_000)
      const res = await sim.tick()
      expect(res).toMatchObject({ status: 202, sent: fleet.length - 1, accepted: fleet.length - 1, duplicates: 0 })
      await ctx.app.monitoring.sweep()
    }
    await sim.stop()

    const raised = await ctx.db.select().from(alerts)
      .where(and(eq(alerts.organizationId, orgId), eq(alerts.type, 'temperature_excursion'), gte(alerts.triggeredAt, start)))
    expect(raised.filter((a) => a.status === 'resolved').length).toBeGreaterThanOrEqual(3)
    expect(raised.some((a) => a.severity === 'critical' && a.status === 'resolved')).toBe(true)
    expect(lines.some((l) => l.includes('door left open'))).toBe(true)

    const [stillSilent] = await ctx.db.select({ state: units.state }).from(units).where(eq(units.id, silent.unitId))
    expect(stillSilent!.state).toBe('offline')
    const others = await ctx.db.select({ id: units.id, state: units.state, lastReadingAt: units.lastReadingAt })
      .from(units).where(eq(units.organizationId, orgId))
    for (const u of others.filter((o) => o.id !== silent.unitId)) {
      expect(u.state).not.toBe('offline')
      expect(u.lastReadingAt!.getTime()).toBe(ctx.clock.now().getTime())
    }
  }, 120_000)
})
