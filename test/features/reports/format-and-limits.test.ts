import { describe, expect, it } from 'vitest'
import { eq, sql } from 'drizzle-orm'
import pg from 'pg'
import { units } from '../../../src/db/schema.js'
import { rows } from '../../../src/infra/postgres.js'
import { waitFor } from '../../../src/lib/net.js'
import type { ComplianceReport } from '../../../src/features/reports/service.js'
import { backends, useTestApp } from '../../helpers/fixture.js'
import type { TestDatabase } from '../../helpers/db.js'

const NOW = new Date('2026-03-10T12:02:30.000Z')
const HOUR = 3_600_000

describe.each(backends)('compliance report as CSV ($name)', ({ name }) => {
  const ctx = useTestApp({ backend: name, clock: NOW })

  it('answers the rows of units[].days as a spreadsheet-ready CSV', async () => {
    const fx = await ctx.org({ units: 2 })
    await ctx.db.update(units).set({ name: '=HYPERLINK("x"), fridge' }).where(eq(units.id, fx.units[0]!.id))
    const readings = []
    for (let k = 0; k < 60; k++) readings.push({ deviceEui: fx.devices[k % 2]!.deviceEui, temperature: [1.5, 4, 8.5, -2.25][k % 4]!, recordedAt: new Date(NOW.getTime() - 40 * HOUR + k * 37 * 60_000) })
    expect((await ctx.ingest(fx, readings)).statusCode).toBe(202)
    const query = `from=${new Date(NOW.getTime() - 50 * HOUR).toISOString()}&to=${NOW.toISOString()}`
    const headers = ctx.bearer({ [fx.org.id]: 'viewer' })
    const json = (await ctx.app.inject({ url: `/api/orgs/${fx.org.id}/reports/compliance?${query}`, headers })).json<ComplianceReport>()
    const res = await ctx.app.inject({ url: `/api/orgs/${fx.org.id}/reports/compliance?${query}&format=csv`, headers })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8')
    expect(res.headers['content-disposition']).toBe('attachment; filename="compliance-2026-03-08-2026-03-10.csv"')
    expect(res.body.startsWith('\ufeff')).toBe(true)
    expect(res.body.endsWith('\r\n')).toBe(true)
    const lines = res.body.slice(1).split('\r\n').slice(0, -1)
    expect(lines[0]).toBe('unit_id,unit_name,date,readings,in_range,percentage,min_temperature,max_temperature,excursions')
    const expected = json.units.flatMap((u) => u.days.map((d) => [
      u.unitId,
      u.unitName.startsWith('=') ? `"'${u.unitName.replaceAll('"', '""')}"` : u.unitName,
      d.date, d.readings, d.inRange, d.percentage, d.min ?? '', d.max ?? '', d.excursions
    ].join(',')))
    expect(lines.slice(1)).toEqual(expected)
    // Three UTC days touched by the window, two units; both units' rows hold every reading.
    expect(lines).toHaveLength(1 + 3 * 2)
    expect(json.units.reduce((s, u) => s + u.days.reduce((t, d) => t + d.readings, 0), 0)).toBe(60)
  })
})

describe('compliance report limits (postgres)', () => {
  const ctx = useTestApp({ backend: 'postgres', clock: NOW, env: { REPORT_STATEMENT_TIMEOUT_MS: '1500', REPORT_CONCURRENCY_PER_ORG: '2' } })

  it('refuses a third report of one organization while two run (429 Retry-After), and stops each at its statement timeout (503)', async () => {
    const fx = await ctx.org({ units: 1 })
    const other = await ctx.org({ units: 1 })
    const report = (orgId: string) => ctx.app.inject({ url: `/api/orgs/${orgId}/reports/compliance`, headers: ctx.bearer({ [orgId]: 'viewer' }) })
    // Another session holds a lock every report needs: the reports wait, as a slow scan would.
    const blocker = new pg.Client({ connectionString: (ctx.database as TestDatabase).url })
    await blocker.connect()
    try {
      await blocker.query('begin')
      await blocker.query('lock table units in access exclusive mode')
      const started = Date.now()
      const slow = [report(fx.org.id), report(fx.org.id)]
      await waitFor(async () => {
        const [row] = await rows<{ n: number }>(ctx.db, sql`
          select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)
        return row!.n >= 2
      }, 10_000, 'two reports waiting')
      const third = await report(fx.org.id)
      expect(third.statusCode).toBe(429)
      expect(third.headers['retry-after']).toBe('1')
      expect(third.json()).toEqual({ error: { code: 'RATE_LIMITED', message: expect.any(String) } })
      // Another organization has slots of its own.
      const elsewhere = report(other.org.id)
      for (const res of await Promise.all([...slow, elsewhere])) {
        expect(res.statusCode).toBe(503)
        expect(res.json()).toEqual({ error: { code: 'REPORT_TIMEOUT', message: expect.stringContaining('1500 ms') } })
      }
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400)
    } finally {
      await blocker.query('rollback')
      await blocker.end()
    }
    // The slots and connections are back.
    const results = await Promise.all([report(fx.org.id), report(fx.org.id)])
    expect(results.map((r) => r.statusCode)).toEqual([200, 200])
  })
})
