import { sql } from 'drizzle-orm'
import { expect, it } from 'vitest'
import { alerts } from '../../../src/db/schema.js'
import { rows } from '../../../src/infra/postgres.js'
import { fromJsonRow } from '../../../src/features/monitoring/sql-values.js'
import { backends, useTestApp } from '../../helpers/fixture.js'

for (const { name } of backends) {
  const ctx = useTestApp({ backend: name })
  it(`an alert read as JSON (json_agg) maps to exactly what drizzle's select returns (${name})`, async () => {
    const f = await ctx.org({ units: 1 })
    await ctx.db.insert(alerts).values({ organizationId: f.org.id, unitId: f.units[0]!.id, type: 'temperature_excursion', severity: 'critical', status: 'acknowledged', triggerTemperature: 12.35, threshold: 'temp_max', triggeredAt: new Date('2030-01-01T10:00:00.123Z'), acknowledgedAt: new Date('2030-01-01T10:05:00.456Z') })
    const viaDrizzle = await ctx.db.select().from(alerts)
    const [row] = await rows<{ a: Array<Record<string, unknown>> }>(ctx.db, sql`select json_agg(t) as a from alerts t`)
    expect(row!.a.map((x) => fromJsonRow(alerts, x))).toEqual(viaDrizzle)
  })
}
