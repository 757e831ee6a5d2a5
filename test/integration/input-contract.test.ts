import diagnostics from 'node:diagnostics_channel'
import { eq } from 'drizzle-orm'
import type { FastifyInstance, HTTPMethods, RouteOptions } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { alerts, devices, units } from '../../src/db/schema.js'
import { useTestApp } from '../helpers/fixture.js'
import type { OrgFixture } from '../helpers/fixtures.js'

interface Route { method: HTTPMethods, url: string, schema: RouteOptions['schema'], config: RouteOptions['config'] }
type JsonSchema = { type?: string | string[], properties?: Record<string, JsonSchema>, items?: JsonSchema, format?: string, anyOf?: JsonSchema[] }

/** Every route of the app as registered (the diagnostics channel sees each instance before its plugins run). */
function routeRecorder () {
  const routes: Route[] = []
  const onInit = (message: unknown) => {
    const { fastify } = message as { fastify: FastifyInstance }
    fastify.addHook('onRoute', (r) => { for (const method of [r.method].flat()) routes.push({ method, url: r.url, schema: r.schema, config: r.config }) })
  }
  return { routes, start: () => diagnostics.subscribe('fastify.initialization', onInit), stop: () => { diagnostics.unsubscribe('fastify.initialization', onInit) } }
}

// Ids that are not canonical UUIDs, each of which once reached PostgreSQL: a URN (Ajv's `uuid` format accepts
// it), braces, a trailing character, an injection attempt, a NUL.
const badIds = (id: string) => [`urn:uuid:${id}`, `{${id}}`, `${id}0`, "1' or '1'='1", 'not-a-uuid', '%00']

/** A value of the wrong JSON type for a schema: what a careless or hostile client sends. */
function wrongValues (s: JsonSchema): unknown[] {
  const type = s.anyOf ? s.anyOf.map((x) => x.type).flat() : [s.type].flat()
  const out: unknown[] = []
  if (!type.includes('null')) out.push(null)
  if (!type.includes('string')) out.push('5', 'Infinity')
  if (!type.includes('number') && !type.includes('integer')) out.push(42)
  if (!type.includes('boolean')) out.push(true)
  if (!type.includes('array')) out.push(['x'])
  if (!type.includes('object')) out.push({ x: 1 })
  if (type.includes('string') && s.format === 'uuid') out.push('urn:uuid:11111111-1111-4111-8111-111111111111')
  if (type.includes('string') && s.format === 'date-time') out.push('0000-01-01T00:00:00Z')
  if (type.includes('string')) out.push('nul\u0000inside')
  return out
}

describe('every route refuses wrongly typed input and malformed ids with 400, never 500', () => {
  const recorder = routeRecorder()
  beforeAll(() => recorder.start())
  const ctx = useTestApp()
  beforeAll(() => recorder.stop())
  afterAll(() => recorder.stop())
  let fx: OrgFixture
  let alertId: string
  let keyId: string
  let owner: { authorization: string }

  beforeAll(async () => {
    fx = await ctx.org({ units: 1 })
    const [alert] = await ctx.db.insert(alerts).values({ organizationId: fx.org.id, unitId: fx.units[0]!.id, type: 'offline' }).returning()
    alertId = alert!.id
    owner = ctx.bearer({ [fx.org.id]: 'owner' }, { admin: true })
    const created = await ctx.app.inject({ method: 'POST', url: `/api/orgs/${fx.org.id}/api-keys`, headers: owner, payload: { name: 'walker' } })
    keyId = created.json().apiKey.id
  })

  const ids = (): Record<string, string> => ({ orgId: fx.org.id, unitId: fx.units[0]!.id, alertId, keyId })
  const fill = (url: string, override: Record<string, string> = {}) =>
    url.replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) => encodeURIComponent(override[name] ?? ids()[name] ?? 'x'))
  const routes = () => recorder.routes.filter((r) => r.url.startsWith('/api/') && r.method !== 'HEAD')
  const headersFor = (r: Route) => r.config?.auth === 'apiKey' ? { 'x-api-key': fx.apiKey } : owner

  // A valid body per write route: each test then breaks exactly one field, so the 400 is that field's.
  const validBodies = (): Record<string, Record<string, unknown>> => ({
    'POST /api/orgs': { name: 'Walker', slug: 'walker-org' },
    'POST /api/orgs/:orgId/sites': { name: 'Site' },
    'POST /api/orgs/:orgId/units': { siteId: fx.site.id, name: 'Unit', unitType: 'fridge', tempMin: 2, tempMax: 8 },
    'PATCH /api/orgs/:orgId/units/:unitId': { name: 'Renamed', tempMin: 1, tempMax: 9, isActive: true },
    'POST /api/orgs/:orgId/devices': { unitId: fx.units[0]!.id, deviceEui: 'walker-eui', battery: 50 },
    'POST /api/orgs/:orgId/api-keys': { name: 'another' },
    'POST /api/ingest/readings': { readings: [{ deviceEui: fx.devices[0]!.deviceEui, temperature: 5, recordedAt: new Date().toISOString(), humidity: 50, battery: 80 }] }
  })

  it('sees the routes it walks', () => {
    expect(routes().length).toBeGreaterThanOrEqual(22)
    const withBodies = routes().filter((r) => (r.schema as { body?: unknown } | undefined)?.body)
    expect(withBodies.map((r) => `${r.method} ${r.url}`).sort()).toEqual(Object.keys(validBodies()).sort())
  })

  it('answers 400 to a malformed id in every path parameter', async () => {
    const problems: string[] = []
    let sent = 0
    for (const r of routes()) {
      for (const param of [...r.url.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!)) {
        for (const bad of badIds(ids()[param] ?? '')) {
          const body = validBodies()[`${r.method} ${r.url}`]
          const res = await ctx.app.inject({ method: r.method, url: fill(r.url, { [param]: bad }), headers: headersFor(r), ...(body ? { payload: body } : {}) })
          sent++
          if (res.statusCode !== 400 || res.json().error?.code !== 'VALIDATION_ERROR') problems.push(`${r.method} ${r.url} ${param}=${bad}: ${res.statusCode} ${res.body.slice(0, 120)}`)
        }
      }
    }
    expect(sent).toBeGreaterThan(100)
    expect(problems).toEqual([])
  })

  it('answers 400 to a malformed id in every query parameter that takes one', async () => {
    const problems: string[] = []
    let sent = 0
    for (const r of routes().filter((x) => x.method === 'GET')) {
      const query = (r.schema as { querystring?: JsonSchema } | undefined)?.querystring?.properties ?? {}
      for (const [name, s] of Object.entries(query)) {
        if (s.format !== 'uuid') continue
        for (const bad of badIds(ids().unitId!)) {
          const res = await ctx.app.inject({ url: `${fill(r.url)}?${name}=${encodeURIComponent(bad)}`, headers: headersFor(r) })
          sent++
          if (res.statusCode !== 400) problems.push(`${r.url}?${name}=${bad}: ${res.statusCode} ${res.body.slice(0, 120)}`)
        }
      }
    }
    expect(sent).toBeGreaterThanOrEqual(18) // unitId of alerts, alert counts and devices; siteId of units
    expect(problems).toEqual([])
  })

  it('answers 400 naming the field to every wrongly typed body field, and changes nothing', async () => {
    const problems: string[] = []
    let sent = 0
    const unitBefore = (await ctx.db.select().from(units).where(eq(units.id, fx.units[0]!.id)))[0]
    const deviceCount = async () => (await ctx.db.select().from(devices).where(eq(devices.organizationId, fx.org.id))).length
    const devicesBefore = await deviceCount()
    for (const r of routes()) {
      const schema = (r.schema as { body?: JsonSchema } | undefined)?.body
      const valid = validBodies()[`${r.method} ${r.url}`]
      if (!schema || !valid) continue
      const cases: Array<[string, unknown]> = []
      for (const [field, s] of Object.entries(schema.properties ?? {})) {
        for (const wrong of wrongValues(s)) cases.push([field, { ...valid, [field]: wrong }])
        // Inside arrays of objects (ingestion's readings): each field of the first item.
        const item = s.items?.properties
        if (item) {
          const first = (valid[field] as Array<Record<string, unknown>>)[0]!
          for (const [inner, si] of Object.entries(item)) for (const wrong of wrongValues(si)) cases.push([inner, { ...valid, [field]: [{ ...first, [inner]: wrong }] }])
        }
      }
      for (const [field, payload] of cases) {
        const res = await ctx.app.inject({ method: r.method, url: fill(r.url), headers: headersFor(r), payload: payload as object })
        sent++
        const err = res.json().error as { code?: string, message?: string } | undefined
        if (res.statusCode !== 400 || !err || !err.message?.includes(field)) {
          if (!(res.statusCode === 400 && err?.message?.includes('NUL'))) problems.push(`${r.method} ${r.url} ${JSON.stringify(payload).slice(0, 100)}: ${res.statusCode} ${res.body.slice(0, 120)}`)
        }
      }
    }
    expect(sent).toBeGreaterThan(120)
    expect(problems).toEqual([])
    // Nothing was written by any of them: the unit is as it was, no device appeared.
    expect((await ctx.db.select().from(units).where(eq(units.id, fx.units[0]!.id)))[0]).toEqual(unitBefore)
    expect(await deviceCount()).toBe(devicesBefore)
  })

  it('the cases the review reproduced: null deactivates nothing, 42 is not a name, true is not a temperature', async () => {
    const url = `/api/orgs/${fx.org.id}/units/${fx.units[0]!.id}`
    for (const payload of [{ isActive: null }, { name: 42 }, { tempMax: null }, { tempMax: true }, { name: ['x'] }]) {
      const res = await ctx.app.inject({ method: 'PATCH', url, headers: owner, payload })
      expect(res.statusCode, JSON.stringify(payload)).toBe(400)
      expect(res.json().error.message).toContain(Object.keys(payload)[0])
    }
    const [unit] = await ctx.db.select().from(units).where(eq(units.id, fx.units[0]!.id))
    expect(unit).toMatchObject({ isActive: true, name: 'Unit 1', tempMin: 2, tempMax: 8 })
    const device = await ctx.app.inject({ method: 'POST', url: `/api/orgs/${fx.org.id}/devices`, headers: owner, payload: { unitId: fx.units[0]!.id, deviceEui: 'eui-null-battery', battery: null } })
    expect(device.statusCode).toBe(400)
    // Query strings, which are text, still coerce.
    const listed = await ctx.app.inject({ url: `/api/orgs/${fx.org.id}/units?limit=1`, headers: owner })
    expect(listed.statusCode).toBe(200)
    expect(listed.json()).toHaveLength(1)
  })
})
