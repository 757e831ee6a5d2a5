import { randomUUID } from 'node:crypto'
import { eq, sql } from 'drizzle-orm'
import { beforeAll, describe, expect, it } from 'vitest'
import { alerts, apiKeys, devices, sites, units, type UnitState } from '../../../src/db/schema.js'
import { rows } from '../../../src/infra/postgres.js'
import { backends, useTestApp, type TestContext } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'

/**
 * Keyset paging of the list endpoints (src/http/paging.ts): `limit` (default and maximum 1000) and `cursor`, the
 * body an array, the next page in `Link: <…>; rel="next"`. Rows are inserted straight with Drizzle (thousands of
 * them), then every list is walked page by page and compared with its documented order, computed independently
 * (the ORDER BY the documentation names, run here).
 */

const T0 = new Date('2030-04-01T12:00:00.000Z')
const errorBody = (code: string) => ({ error: { code, message: expect.any(String) } })
const states: UnitState[] = ['normal', 'too_hot', 'too_cold', 'offline']
const cursorOf = (values: unknown) => Buffer.from(JSON.stringify(values)).toString('base64url')

interface Walk { items: Array<Record<string, unknown>>, pages: number, links: string[] }

/**
 * Follows `Link: rel="next"` from `first` until a page has none. Each page is a JSON array of at most `limit` rows;
 * every page but the last is full. Stops with a failure after `maxPages` (a cursor that does not move).
 */
async function walk (ctx: TestContext, first: string, headers: Record<string, string>, limit: number, maxPages: number): Promise<Walk> {
  const items: Array<Record<string, unknown>> = []
  const links: string[] = []
  let url: string | null = first
  let pages = 0
  while (url !== null) {
    if (pages >= maxPages) throw new Error(`more than ${maxPages} pages from ${first}: the cursor does not advance`)
    const res = await ctx.app.inject({ url, headers })
    expect(res.statusCode, url).toBe(200)
    const body = res.json() as unknown
    expect(Array.isArray(body), url).toBe(true)
    const page = body as Array<Record<string, unknown>>
    expect(page.length, url).toBeLessThanOrEqual(limit)
    items.push(...page)
    pages++
    const link = res.headers.link as string | undefined
    if (link === undefined) {
      url = null
    } else {
      expect(page.length, `a page followed by another is full (${url})`).toBe(limit)
      const m = /^<([^>]+)>; rel="next"$/.exec(link)
      expect(m, link).not.toBeNull()
      url = m![1]!
      // Relative: the path of the list itself, no scheme or host.
      expect(url.startsWith('/api/orgs/')).toBe(true)
      links.push(url)
    }
  }
  return { items, pages, links }
}

const ids = (items: Array<Record<string, unknown>>) => items.map((r) => r.id as string)

describe.each(backends)('list paging: units, sites, devices ($name)', ({ name }) => {
  const ctx = useTestApp({ backend: name, clock: T0 })
  let fx: OrgFixture
  let other: OrgFixture
  const viewer = () => ctx.bearer({ [fx.org.id]: 'viewer' })
  const N_UNITS = 2345
  const N_SITES = 1234

  beforeAll(async () => {
    fx = await ctx.org({ units: 0, createdAt: T0 })
    other = await ctx.org({ units: 3, createdAt: T0 })
    // Names repeat (so that the id decides between them), some need escaping in JSON or sort differently by case.
    const odd = ['a"b', 'back\\slash', 'Ünïcödé', 'emoji 🧊', 'lower', 'UPPER', 'comma, name', '  spaced']
    const unitRows = Array.from({ length: N_UNITS }, (_, i) => ({
      organizationId: fx.org.id,
      siteId: fx.site.id,
      name: i < odd.length * 3 ? odd[i % odd.length]! : `Unit ${String(i % 700).padStart(4, '0')}`,
      unitType: 'fridge' as const,
      tempMin: 2,
      tempMax: 8,
      state: states[i % states.length]!,
      createdAt: T0,
      stateChangedAt: T0
    }))
    for (let i = 0; i < unitRows.length; i += 1000) await ctx.db.insert(units).values(unitRows.slice(i, i + 1000))
    const siteRows = Array.from({ length: N_SITES }, (_, i) => ({ organizationId: fx.org.id, name: `Site ${String(i % 400).padStart(3, '0')}`, createdAt: T0 }))
    for (let i = 0; i < siteRows.length; i += 1000) await ctx.db.insert(sites).values(siteRows.slice(i, i + 1000))
    // One device per unit for the first 1500 units; EUIs in mixed case and with punctuation.
    const unitIds = (await ctx.db.select({ id: units.id }).from(units).where(eq(units.organizationId, fx.org.id))).map((u) => u.id)
    const deviceRows = unitIds.slice(0, 1500).map((unitId, i) => ({
      organizationId: fx.org.id,
      unitId,
      deviceEui: `${i % 3 === 0 ? 'EUI' : 'eui'}-${fx.org.id.slice(0, 8)}-${String(i).padStart(5, '0')}${i % 5 === 0 ? ':x' : ''}`,
      createdAt: T0
    }))
    for (let i = 0; i < deviceRows.length; i += 1000) await ctx.db.insert(devices).values(deviceRows.slice(i, i + 1000))
  })

  // The documented orders, run as plain SQL (the same collation the endpoints sort with).
  const unitOrder = async (state?: UnitState) => (await rows<{ id: string }>(ctx.db, sql`
    select id from units where organization_id = ${fx.org.id} ${state ? sql`and state = ${state}` : sql``} order by name, id`)).map((r) => r.id)
  const siteOrder = async () => (await rows<{ id: string }>(ctx.db, sql`
    select id from sites where organization_id = ${fx.org.id} order by name, id`)).map((r) => r.id)
  const deviceOrder = async () => (await rows<{ id: string }>(ctx.db, sql`
    select id from devices where organization_id = ${fx.org.id} order by device_eui`)).map((r) => r.id)

  it('units: 1000 a page by default, every unit exactly once, by name then id', async () => {
    const w = await walk(ctx, `/api/orgs/${fx.org.id}/units`, viewer(), 1000, 10)
    expect(w.pages).toBe(3)
    expect(ids(w.items)).toEqual(await unitOrder())
    expect(new Set(ids(w.items)).size).toBe(N_UNITS)
    // By name, then id, as the response shows them (ids compare as their lower-case text).
    const padded = w.items.filter((u) => /^Unit \d{4}$/.test(u.name as string))
    for (let i = 1; i < padded.length; i++) {
      const [a, b] = [padded[i - 1]!, padded[i]!]
      expect(a.name as string < (b.name as string) || (a.name === b.name && (a.id as string) < (b.id as string))).toBe(true)
    }
    expect(w.items.every((u) => u.organizationId === fx.org.id)).toBe(true)
  })

  it('units: small pages, the Link keeping the other query parameters', async () => {
    const w = await walk(ctx, `/api/orgs/${fx.org.id}/units?limit=97&view=compact`, viewer(), 97, 100)
    expect(w.pages).toBe(Math.ceil(N_UNITS / 97))
    expect(ids(w.items)).toEqual(await unitOrder())
    for (const link of w.links) {
      const q = new URL(link, 'http://x').searchParams
      expect(new URL(link, 'http://x').pathname).toBe(`/api/orgs/${fx.org.id}/units`)
      expect(q.get('limit')).toBe('97')
      expect(q.get('view')).toBe('compact')
      expect(q.get('cursor')).toMatch(/^[A-Za-z0-9_-]+$/)
    }
  })

  it.each(states)('units ?state=%s: every unit in that state exactly once, and only those', async (state) => {
    const w = await walk(ctx, `/api/orgs/${fx.org.id}/units?state=${state}&limit=61`, viewer(), 61, 100)
    const expected = await unitOrder(state)
    expect(expected.length).toBeGreaterThan(500)
    expect(ids(w.items)).toEqual(expected)
    expect(w.items.every((u) => u.state === state)).toBe(true)
    for (const link of w.links) expect(new URL(link, 'http://x').searchParams.get('state')).toBe(state)
  })

  it('sites: every site exactly once, by name then id', async () => {
    const w = await walk(ctx, `/api/orgs/${fx.org.id}/sites?limit=100`, viewer(), 100, 50)
    const expected = await siteOrder()
    expect(expected).toHaveLength(N_SITES + 1)
    expect(ids(w.items)).toEqual(expected)
    const byDefault = await walk(ctx, `/api/orgs/${fx.org.id}/sites`, viewer(), 1000, 5)
    expect(byDefault.pages).toBe(2)
    expect(ids(byDefault.items)).toEqual(expected)
  })

  it('devices: every device exactly once, by EUI; a last full page announces no empty one', async () => {
    const w = await walk(ctx, `/api/orgs/${fx.org.id}/devices?limit=100`, viewer(), 100, 50)
    expect(w.pages).toBe(15)
    const expected = await deviceOrder()
    expect(expected).toHaveLength(1500)
    expect(ids(w.items)).toEqual(expected)
    const byDefault = await walk(ctx, `/api/orgs/${fx.org.id}/devices`, viewer(), 1000, 5)
    expect(byDefault.pages).toBe(2)
    expect(ids(byDefault.items)).toEqual(expected)
  })

  it("a cursor never reaches another organization's rows", async () => {
    const w = await walk(ctx, `/api/orgs/${other.org.id}/units?limit=1`, ctx.bearer({ [other.org.id]: 'viewer' }), 1, 10)
    expect(ids(w.items).sort()).toEqual(other.units.map((u) => u.id).sort())
  })
})

describe('list paging: alerts and api keys (postgres)', () => {
  const ctx = useTestApp({ clock: T0 })
  let fx: OrgFixture
  const N_ACTIVE = 900
  const N_ACKED = 400
  const N_RESOLVED = 1700

  beforeAll(async () => {
    fx = await ctx.org({ units: 1000, createdAt: T0 })
    const unitIds = fx.units.map((u) => u.id)
    // Trigger times repeat (600 distinct minutes for 3000 alerts), so that the id decides between equal ones.
    const minute = (k: number) => new Date(T0.getTime() - (k % 600) * 60_000 - (k % 7))
    const rowsToInsert = [
      ...Array.from({ length: N_ACTIVE }, (_, k) => ({ status: 'active' as const, type: 'temperature_excursion' as const, unitId: unitIds[k]!, triggeredAt: minute(k) })),
      ...Array.from({ length: N_ACKED }, (_, k) => ({ status: 'acknowledged' as const, type: 'offline' as const, unitId: unitIds[k]!, triggeredAt: minute(k + 3), acknowledgedAt: T0 })),
      ...Array.from({ length: N_RESOLVED }, (_, k) => ({ status: 'resolved' as const, type: 'temperature_excursion' as const, unitId: unitIds[k % 1000]!, triggeredAt: minute(k + 11), resolvedAt: T0 }))
    ].map((r) => ({ ...r, organizationId: fx.org.id, severity: 'warning' as const, triggerTemperature: r.type === 'offline' ? null : 9.5, threshold: r.type === 'offline' ? null : 'temp_max' as const }))
    for (let i = 0; i < rowsToInsert.length; i += 1000) await ctx.db.insert(alerts).values(rowsToInsert.slice(i, i + 1000))
    // Keys created by the API (clock.now(): millisecond times), some in the same millisecond.
    const keyRows = Array.from({ length: 1150 }, (_, i) => ({ organizationId: fx.org.id, name: `key ${i}`, hash: `h-${randomUUID()}`, createdAt: new Date(T0.getTime() + Math.floor(i / 3)) }))
    for (let i = 0; i < keyRows.length; i += 1000) await ctx.db.insert(apiKeys).values(keyRows.slice(i, i + 1000))
    await ctx.db.insert(sites).values({ organizationId: fx.org.id, name: 'Second site', createdAt: T0 })
  })

  const viewer = () => ctx.bearer({ [fx.org.id]: 'viewer' })
  const owner = () => ctx.bearer({ [fx.org.id]: 'owner' })
  const alertOrder = async (status?: string) => (await rows<{ id: string }>(ctx.db, sql`
    select id from alerts where organization_id = ${fx.org.id} ${status ? sql`and status = ${status}` : sql``}
    order by triggered_at desc, id desc`)).map((r) => r.id)
  const keyOrder = async (orgId: string) => (await rows<{ id: string }>(ctx.db, sql`
    select id from api_keys where organization_id = ${orgId} order by created_at, id`)).map((r) => r.id)

  it('alerts: 1000 a page by default, every alert exactly once, newest first', async () => {
    const w = await walk(ctx, `/api/orgs/${fx.org.id}/alerts`, viewer(), 1000, 10)
    expect(w.pages).toBe(3)
    const expected = await alertOrder()
    expect(expected).toHaveLength(N_ACTIVE + N_ACKED + N_RESOLVED)
    expect(ids(w.items)).toEqual(expected)
    for (let i = 1; i < w.items.length; i++) expect(w.items[i - 1]!.triggeredAt as string >= (w.items[i]!.triggeredAt as string)).toBe(true)
  })

  it.each([['active', N_ACTIVE], ['acknowledged', N_ACKED], ['resolved', N_RESOLVED]] as const)('alerts ?status=%s: each exactly once, small pages', async (status, count) => {
    const w = await walk(ctx, `/api/orgs/${fx.org.id}/alerts?status=${status}&limit=77`, viewer(), 77, 100)
    expect(w.items).toHaveLength(count)
    expect(ids(w.items)).toEqual(await alertOrder(status))
    expect(w.items.every((a) => a.status === status)).toBe(true)
    for (const link of w.links) expect(new URL(link, 'http://x').searchParams.get('status')).toBe(status)
  })

  it('api keys: oldest first, every key exactly once, never a secret', async () => {
    const w = await walk(ctx, `/api/orgs/${fx.org.id}/api-keys?limit=100`, owner(), 100, 50)
    const expected = await keyOrder(fx.org.id)
    expect(expected).toHaveLength(1151)
    expect(ids(w.items)).toEqual(expected)
    for (const k of w.items) expect(Object.keys(k).sort()).toEqual(['createdAt', 'id', 'name', 'organizationId', 'revokedAt'])
    const byDefault = await walk(ctx, `/api/orgs/${fx.org.id}/api-keys`, owner(), 1000, 5)
    expect(byDefault.pages).toBe(2)
    expect(ids(byDefault.items)).toEqual(expected)
  })

  it('api keys stored with microseconds (created by the database default, as test/helpers/fixtures.ts and earlier releases of `coldboard api-key create` do): each exactly once', async () => {
    const o = await ctx.org({ units: 0 })
    // Separate statements: each gets its own now(), with microseconds.
    for (let i = 0; i < 5; i++) await ctx.db.insert(apiKeys).values({ organizationId: o.org.id, name: `legacy ${i}`, hash: `legacy-${randomUUID()}` })
    const expected = await keyOrder(o.org.id)
    expect(expected).toHaveLength(6)
    const w = await walk(ctx, `/api/orgs/${o.org.id}/api-keys?limit=2`, ctx.bearer({ [o.org.id]: 'owner' }), 2, 10)
    expect(ids(w.items)).toEqual(expected)
  })

  describe('limit and cursor are validated: a 400 with the error body, never a 500', () => {
    const lists = ['units', 'sites', 'devices', 'alerts', 'api-keys'] as const
    const headers = () => ctx.bearer({ [fx.org.id]: 'owner' })
    const get = (list: string, query: string) => ctx.app.inject({ url: `/api/orgs/${fx.org.id}/${list}${query}`, headers: headers() })
    /** The cursor of the second page of a list, as the server wrote it. */
    const cursorFrom = async (list: string) => {
      const res = await get(list, '?limit=1')
      return new URL(/^<([^>]+)>/.exec(res.headers.link as string)![1]!, 'http://x').searchParams.get('cursor')!
    }

    it.each(lists)('%s: limit 0, 1001, -1, 2.5 and text are refused; 1 and 1000 are accepted', async (list) => {
      for (const limit of ['0', '1001', '-1', '2.5', 'ten']) {
        const res = await get(list, `?limit=${limit}`)
        expect(res.statusCode, `limit=${limit}`).toBe(400)
        expect(res.json(), `limit=${limit}`).toEqual(errorBody('VALIDATION_ERROR'))
      }
      for (const limit of [1, 1000]) {
        const res = await get(list, `?limit=${limit}`)
        expect(res.statusCode, `limit=${limit}`).toBe(200)
        expect((res.json() as unknown[]).length).toBeLessThanOrEqual(limit)
      }
    })

    it.each(lists)('%s: malformed cursors', async (list) => {
      const malformed = [
        'not a cursor!',
        'x'.repeat(513),
        Buffer.from('garbage').toString('base64url'),
        Buffer.from('{"a":1}').toString('base64url'),
        cursorOf([]),
        cursorOf([1, 2]),
        cursorOf(null),
        cursorOf([{ a: 1 }, randomUUID()]),
        cursorOf(['x', 'not-a-uuid']),
        cursorOf(['x', randomUUID(), 'extra'])
      ]
      for (const cursor of malformed) {
        const res = await get(list, `?cursor=${encodeURIComponent(cursor)}`)
        expect(res.statusCode, `${list} cursor=${cursor}`).toBe(400)
        expect(res.json(), cursor).toEqual(errorBody('VALIDATION_ERROR'))
      }
    })

    it('a cursor of another list is refused, even where its key would fit (a cursor names its list)', async () => {
      const cursors = Object.fromEntries(await Promise.all(lists.map(async (l) => [l, await cursorFrom(l)] as const)))
      const fits = (from: typeof lists[number], to: typeof lists[number]) => from === to
      const answers: Record<string, unknown> = {}
      const expected: Record<string, unknown> = {}
      for (const from of lists) {
        for (const to of lists) {
          if (fits(from, to)) continue
          const res = await get(to, `?cursor=${cursors[from]}`)
          answers[`a ${from} cursor on ${to}`] = { status: res.statusCode, code: (res.json() as { error?: { code: string } }).error?.code }
          expected[`a ${from} cursor on ${to}`] = { status: 400, code: 'VALIDATION_ERROR' }
        }
      }
      expect(answers).toEqual(expected)
    })

    it('cursors crafted to reach the database with values it refuses', async () => {
      const id = randomUUID()
      const cases: Array<[string, unknown[]]> = [
        ['units', ['nul\u0000byte', id]],
        ['sites', ['nul\u0000byte', id]],
        ['devices', ['nul\u0000byte']],
        ['alerts', ['2030-02-30T10:00:00Z', id]],
        ['alerts', ['Unit 0001', id]],
        ['alerts', ['-271821-04-20T00:00:00.000Z', id]],
        ['api-keys', ['hello 1', id]]
      ]
      const answers: Record<string, unknown> = {}
      const expected: Record<string, unknown> = {}
      for (const [list, values] of cases) {
        const res = await get(list, `?cursor=${cursorOf(values)}`)
        answers[`${list} ${JSON.stringify(values)}`] = { status: res.statusCode, code: (res.json() as { error?: { code: string } }).error?.code }
        expected[`${list} ${JSON.stringify(values)}`] = { status: 400, code: 'VALIDATION_ERROR' }
      }
      expect(answers).toEqual(expected)
    })
  })
})

describe('list paging: names the server itself must be able to page past (postgres)', () => {
  const ctx = useTestApp({ clock: T0 })

  // Names the API accepts (src/features/management/schemas.ts: at most 200 characters); each one on a page boundary.
  it.each([
    ['200 characters of Latin-1', 'é'.repeat(200)],
    ['130 CJK characters', '冷'.repeat(130)],
    ['200 emoji', '🧊'.repeat(200)],
    ['200 quotes', '"'.repeat(200)]
  ])('a unit named with %s', async (_what, name) => {
    const fx = await ctx.org({ units: 0, createdAt: T0 })
    const headers = ctx.bearer({ [fx.org.id]: 'manager' })
    // Three units of that one name: whatever the collation, the first two pages end on it (the id decides between them).
    for (let i = 0; i < 3; i++) {
      const res = await ctx.app.inject({ method: 'POST', url: `/api/orgs/${fx.org.id}/units`, headers, payload: { siteId: fx.site.id, name, unitType: 'fridge', tempMin: 2, tempMax: 8 } })
      expect(res.statusCode, res.body).toBe(201)
    }
    const w = await walk(ctx, `/api/orgs/${fx.org.id}/units?limit=1`, headers, 1, 5)
    expect(w.items).toHaveLength(3)
    expect(new Set(ids(w.items)).size).toBe(3)
  })
})
