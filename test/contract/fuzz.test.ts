import fc from 'fast-check'
import { sql } from 'drizzle-orm'
import { beforeAll, describe, expect, it } from 'vitest'
import { createValidatorCompiler } from '../../src/http/validation.js'
import { useTestApp } from '../helpers/fixture.js'
import type { OrgFixture } from '../helpers/fixtures.js'

/*
 * A contract fuzz test: requests generated from each route's own schema in the OpenAPI document (fast-check
 * arbitraries built from the JSON schemas), sent to a real app on real PostgreSQL and Redis. Valid requests
 * first; then each field mutated (wrong type, null, NUL characters, "Infinity", huge and negative numbers,
 * year-0000 and year-9999 dates, one-element arrays, malformed ids). It asserts: no 5xx ever; the error body on
 * every 4xx; no 2xx for a mutated write the schema refuses; and the data the valid requests created unchanged by
 * the mutated ones.
 */

type Schema = {
  type?: string | string[]
  format?: string
  enum?: unknown[]
  const?: unknown
  anyOf?: Schema[]
  properties?: Record<string, Schema>
  required?: string[]
  items?: Schema
  minimum?: number
  maximum?: number
  minLength?: number
  maxLength?: number
  pattern?: string
  minItems?: number
  maxItems?: number
}
interface Parameter { name: string, in: 'path' | 'query' | 'header', required?: boolean, schema: Schema }
interface Operation { method: string, path: string, operationId: string, parameters: Parameter[], body?: Schema, security: unknown[] | undefined }

const SEED = Number(process.env.FUZZ_SEED ?? 20261201)
const RUNS = Number(process.env.FUZZ_RUNS ?? 12)

/** A fast-check arbitrary of valid values for a schema; `known` supplies the values that must name real rows. */
function arbitrary (s: Schema, name: string, known: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> {
  if (known[name]) return known[name]!
  if (s.anyOf) return fc.oneof(...s.anyOf.map((x) => arbitrary(x, name, known)))
  if (s.enum) return fc.constantFrom(...s.enum)
  if (s.const !== undefined) return fc.constant(s.const)
  const type = [s.type].flat()[0]
  switch (type) {
    case 'null': return fc.constant(null)
    case 'boolean': return fc.boolean()
    case 'integer': return fc.integer({ min: s.minimum ?? -1_000_000, max: s.maximum ?? 1_000_000 })
    case 'number': return fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true, noDefaultInfinity: true }).map((n) => Math.round(n * 100) / 100)
    case 'array': return fc.array(arbitrary(s.items ?? {}, name, known), { minLength: s.minItems ?? 0, maxLength: Math.min(s.maxItems ?? 5, 5) })
    case 'object': {
      const props = s.properties ?? {}
      const record = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, arbitrary(v, k, known)]))
      return fc.record(record, { requiredKeys: (s.required ?? []).filter((k) => k in props) })
    }
    default: {
      if (s.format === 'uuid') return fc.uuid({ version: 4 })
      if (s.format === 'date-time') return fc.date({ min: new Date('2020-01-01T00:00:00Z'), max: new Date(), noInvalidDate: true }).map((d) => d.toISOString())
      const max = Math.min(s.maxLength ?? 40, 40)
      const min = s.minLength ?? 0
      if (s.pattern) return fc.stringMatching(new RegExp(s.pattern)).filter((x) => x.length >= min && x.length <= (s.maxLength ?? Infinity)).map((x) => x.slice(0, s.maxLength ?? x.length))
      return fc.string({ minLength: Math.max(min, 0), maxLength: Math.max(max, min) })
    }
  }
}

/** What a careless or hostile client sends instead of a valid value. */
function mutations (s: Schema): unknown[] {
  const type = s.anyOf ? s.anyOf.flatMap((x) => [x.type].flat()) : [s.type].flat()
  const out: unknown[] = ['nul\u0000char', 'Infinity', 1e308, -1e308, -1, 2 ** 53, ['x'], [], { a: 1 }, true, '']
  if (!type.includes('null')) out.push(null)
  if (s.format === 'date-time' || type.includes('string')) out.push('0000-01-01T00:00:00Z', '9999-12-31T23:59:59Z')
  if (s.format === 'uuid' || type.includes('string')) out.push('urn:uuid:11111111-1111-4111-8111-111111111111', '{11111111-1111-4111-8111-111111111111}', '11111111-1111-4111-8111-11111111111g')
  if (s.type === 'array' && s.items) out.push([null], ['one-element'])
  return out
}

function operationsOf (doc: { paths: Record<string, Record<string, { operationId: string, parameters?: Parameter[], requestBody?: { content: Record<string, { schema: Schema }> }, security?: unknown[] }>> }): Operation[] {
  const ops: Operation[] = []
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      ops.push({ method: method.toUpperCase(), path, operationId: op.operationId, parameters: op.parameters ?? [], body: op.requestBody?.content['application/json']?.schema, security: op.security })
    }
  }
  return ops
}

describe('contract fuzz: requests generated from every route\'s schema', () => {
  const ctx = useTestApp({ redis: true })
  let fx: OrgFixture
  let ops: Operation[]
  let alertId: string
  let keyId: string
  const bodyValidator = createValidatorCompiler()
  let sent = 0
  const statuses: Record<string, number> = {}

  beforeAll(async () => {
    fx = await ctx.org({ units: 2 })
    alertId = (await ctx.db.execute(sql`insert into alerts (organization_id, unit_id, type) values (${fx.org.id}, ${fx.units[0]!.id}, 'offline') returning id`) as unknown as { rows: Array<{ id: string }> }).rows[0]!.id
    const key = await ctx.app.inject({ method: 'POST', url: `/api/orgs/${fx.org.id}/api-keys`, headers: ctx.bearer({ [fx.org.id]: 'owner' }), payload: { name: 'fuzz' } })
    keyId = key.json().apiKey.id
    ops = operationsOf(ctx.app.swagger() as never)
  })

  const ids = (): Record<string, string> => ({ orgId: fx.org.id, unitId: fx.units[0]!.id, alertId, keyId })
  const known = (): Record<string, fc.Arbitrary<unknown>> => ({
    siteId: fc.constant(fx.site.id),
    unitId: fc.constantFrom(...fx.units.map((u) => u.id)),
    deviceEui: fc.constantFrom(...fx.devices.map((d) => d.deviceEui)),
    recordedAt: fc.integer({ min: 1, max: 3600 }).map((s) => new Date(Date.now() - s * 1000).toISOString())
  })
  const headersFor = (op: Operation): Record<string, string> => {
    if (op.security?.length === 0) return {}
    if (JSON.stringify(op.security ?? []).includes('apiKey')) return { 'x-api-key': fx.apiKey }
    return ctx.bearer({ [fx.org.id]: 'owner' }, { admin: true })
  }

  async function send (op: Operation, path: Record<string, string>, query: Record<string, unknown>, body: unknown) {
    const url = op.path.replace(/\{(\w+)\}/g, (_m, n: string) => encodeURIComponent(path[n] ?? ids()[n] ?? ''))
    const qs = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])).toString()
    sent++
    const res = await ctx.app.inject({ method: op.method as 'GET', url: qs ? `${url}?${qs}` : url, headers: headersFor(op), ...(body !== undefined ? { payload: body as object } : {}) })
    statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
    return res
  }

  /** Checks a response: never 5xx, and every 4xx has the error body. */
  function check (problems: string[], what: string, res: { statusCode: number, body: string, headers: Record<string, unknown> }) {
    if (res.statusCode >= 500) problems.push(`${what}: ${res.statusCode} ${res.body.slice(0, 160)}`)
    if (res.statusCode >= 400) {
      let ok = false
      try {
        const e = (JSON.parse(res.body) as { error?: { code?: unknown, message?: unknown } }).error
        ok = typeof e?.code === 'string' && typeof e.message === 'string' && Object.keys(JSON.parse(res.body) as object).length === 1
      } catch { ok = false }
      if (!ok) problems.push(`${what}: ${res.statusCode} without the error body: ${res.body.slice(0, 160)}`)
      if ((res.statusCode === 429 || res.statusCode === 503) && res.headers['retry-after'] === undefined) problems.push(`${what}: ${res.statusCode} without Retry-After`)
    }
  }

  const snapshot = async () => {
    const out: Record<string, unknown> = {}
    for (const table of ['organizations', 'sites', 'units', 'devices', 'alerts', 'api_keys']) {
      out[table] = (await ctx.db.execute(sql.raw(`select * from ${table} order by id`)) as unknown as { rows: unknown[] }).rows
    }
    return out
  }

  it('sees every operation of the document', () => {
    expect(ops.length).toBeGreaterThanOrEqual(26)
    expect(new Set(ops.map((o) => o.operationId)).size).toBe(ops.length)
  })

  it('valid requests: no 5xx, and the error body on every 4xx', async () => {
    const problems: string[] = []
    for (const op of ops) {
      if (op.path === '/metrics') continue // text, not JSON
      const query = fc.record(Object.fromEntries(op.parameters.filter((p) => p.in === 'query' && p.name !== 'cursor').map((p) => [p.name, arbitrary(p.schema, p.name, known())])), { requiredKeys: [] })
      const body = op.body ? arbitrary(op.body, 'body', known()) : fc.constant(undefined)
      await fc.assert(fc.asyncProperty(query, body, async (q, b) => {
        const res = await send(op, {}, q as Record<string, unknown>, b)
        check(problems, `${op.operationId} ${JSON.stringify({ q, b }).slice(0, 200)}`, res)
        return true
      }), { seed: SEED, numRuns: RUNS })
    }
    expect(problems).toEqual([])
    // The generated requests reach the handlers: most valid ones succeed (some meet business rules, e.g. tempMin ≥ tempMax).
    const ok = Object.entries(statuses).filter(([s]) => Number(s) < 300).reduce((n, [, c]) => n + c, 0)
    expect(ok).toBeGreaterThan(sent / 2)
  })

  it('mutated requests: no 5xx, the error body on every 4xx, no 2xx for a refused write, and nothing changed', async () => {
    const before = await snapshot()
    const problems: string[] = []
    let writes = 0
    for (const op of ops) {
      if (op.path === '/metrics') continue
      const base = op.body ? fc.sample(arbitrary(op.body, 'body', known()), { seed: SEED, numRuns: 1 })[0] as Record<string, unknown> : undefined
      // Path and query parameters, each mutated.
      for (const p of op.parameters.filter((x) => x.in !== 'header')) {
        for (const bad of mutations(p.schema)) {
          if (p.in === 'path' && typeof bad !== 'string') continue
          const res = await send(op, p.in === 'path' ? { [p.name]: String(bad) } : {}, p.in === 'query' ? { [p.name]: bad } : {}, base)
          check(problems, `${op.operationId} ${p.in} ${p.name}=${JSON.stringify(bad)}`, res)
          if (p.in === 'path' && res.statusCode < 400 && op.method !== 'GET') problems.push(`${op.operationId}: a write with ${p.name}=${JSON.stringify(bad)} answered ${res.statusCode}`)
        }
      }
      // Body fields (and the fields of array items), each mutated; a mutation the schema refuses must never be a 2xx.
      if (!op.body || !base) continue
      const validate = bodyValidator({ schema: op.body, method: op.method, url: op.path, httpPart: 'body' } as never) as (v: unknown) => boolean
      const variants: Array<[string, unknown]> = []
      for (const [field, s] of Object.entries(op.body.properties ?? {})) {
        for (const bad of mutations(s)) variants.push([field, { ...base, [field]: bad }])
        const item = s.items?.properties
        const first = Array.isArray(base[field]) ? (base[field] as Array<Record<string, unknown>>)[0] : undefined
        if (item && first) for (const [inner, si] of Object.entries(item)) for (const bad of mutations(si)) variants.push([`${field}[0].${inner}`, { ...base, [field]: [{ ...first, [inner]: bad }] }])
      }
      for (const [field, payload] of variants) {
        const refused = !validate(structuredClone(payload))
        if (!refused) continue // still valid (e.g. a negative temperature): it may rightly change data
        writes++
        const res = await send(op, {}, {}, payload)
        check(problems, `${op.operationId} body ${field}`, res)
        if (res.statusCode < 400) problems.push(`${op.operationId}: mutated ${field} (${JSON.stringify(payload).slice(0, 120)}) answered ${res.statusCode}`)
      }
    }
    expect(writes).toBeGreaterThan(200)
    expect(problems).toEqual([])
    expect(await snapshot()).toEqual(before)
    expect(sent).toBeGreaterThan(1000)
    console.info(`contract fuzz: ${sent} requests (seed ${SEED}), by status ${JSON.stringify(statuses)}; ${writes} schema-refused writes`)
  })
})
