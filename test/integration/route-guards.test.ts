import { randomUUID } from 'node:crypto'
import diagnostics from 'node:diagnostics_channel'
import type { FastifyInstance, HTTPMethods, RouteOptions } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../src/features/auth/tokens.js'
import { useTestApp } from '../helpers/fixture.js'

interface Route { method: HTTPMethods, url: string, config: RouteOptions['config'] }

/**
 * Records every route of the apps built while it is subscribed. Fastify publishes each new instance on the
 * `fastify.initialization` diagnostics channel before any plugin runs, so an onRoute hook added there sees
 * every route, with no test-only hook in src/app.ts.
 */
function routeRecorder () {
  const routes: Route[] = []
  const onInit = (message: unknown) => {
    const { fastify } = message as { fastify: FastifyInstance }
    fastify.addHook('onRoute', (r) => {
      for (const method of [r.method].flat()) routes.push({ method, url: r.url, config: r.config })
    })
  }
  return {
    routes,
    start: () => diagnostics.subscribe('fastify.initialization', onInit),
    stop: () => { diagnostics.unsubscribe('fastify.initialization', onInit) }
  }
}

// Every organization route of the API (registered by the plugins under src/features/, documented at /docs).
// The guard test below covers whatever is registered; this list makes it fail loudly if route discovery ever
// stops seeing routes (an empty loop passes vacuously).
const apiOrgRoutes = [
  'POST /api/orgs/:orgId/sites', 'GET /api/orgs/:orgId/sites',
  'POST /api/orgs/:orgId/units', 'GET /api/orgs/:orgId/units',
  'GET /api/orgs/:orgId/units/:unitId', 'PATCH /api/orgs/:orgId/units/:unitId',
  'POST /api/orgs/:orgId/devices', 'GET /api/orgs/:orgId/devices',
  'GET /api/orgs/:orgId/alerts',
  'POST /api/orgs/:orgId/alerts/:alertId/acknowledge', 'POST /api/orgs/:orgId/alerts/:alertId/resolve',
  'GET /api/orgs/:orgId/dashboard', 'GET /api/orgs/:orgId/dashboard/units/status',
  'GET /api/orgs/:orgId/dashboard/alerts/count', 'GET /api/orgs/:orgId/dashboard/devices/online',
  'GET /api/orgs/:orgId/units/:unitId/temperature-trends',
  'GET /api/orgs/:orgId/reports/compliance'
]

const key = (r: Route) => `${r.method} ${r.url}`
// Path parameters become fresh valid uuids: the guard must answer before any lookup or validation.
const fill = (url: string) => url.replace(/:[A-Za-z0-9_]+/g, () => randomUUID()).replace(/\*/g, 'x')
const hasBody = (method: string) => method === 'POST' || method === 'PUT' || method === 'PATCH'

describe('route guards', () => {
  // The recorder is subscribed around the fixture's build of the app (hooks run in the order they are declared).
  const recorder = routeRecorder()
  const routes = recorder.routes
  beforeAll(() => recorder.start())
  const ctx = useTestApp()
  beforeAll(() => recorder.stop())
  afterAll(() => recorder.stop())
  const strangerOrg = randomUUID()
  const bearer = ctx.bearer

  const send = (r: Route, headers: Record<string, string> = {}) => ctx.app.inject({
    method: r.method,
    url: fill(r.url),
    headers,
    ...(hasBody(r.method) ? { payload: {} } : {})
  })
  const orgRoutes = () => routes.filter((r) => r.url.includes(':orgId'))
  const apiRoutes = () => routes.filter((r) => r.url.startsWith('/api/'))

  it('sees every organization route of the API', () => {
    const seen = new Set(orgRoutes().map(key))
    expect(apiOrgRoutes.filter((r) => !seen.has(r))).toEqual([])
  })

  it('serves organization routes under /api only, where authentication is on by default', () => {
    expect(orgRoutes().filter((r) => !r.url.startsWith('/api/')).map(key)).toEqual([])
    expect(orgRoutes().filter((r) => r.config?.auth !== undefined && r.config.auth !== 'jwt').map(key)).toEqual([])
  })

  it('answers 401 on every /api route without credentials', async () => {
    const failures: string[] = []
    for (const r of apiRoutes()) {
      const res = await send(r)
      if (res.statusCode !== 401) failures.push(`${key(r)} → ${res.statusCode}`)
      else if (r.method !== 'HEAD') expect(res.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.any(String) } })
    }
    expect(apiRoutes().length).toBeGreaterThanOrEqual(apiOrgRoutes.length)
    expect(failures).toEqual([])
  })

  it('answers 401 on every bearer route for a token signed with another secret', async () => {
    const other = createTokenService('another-secret-another-secret-0123456789', { maxTtlMs: 86_400_000 })
    const forged = { authorization: `Bearer ${other.sign({ sub: 'x', orgs: { [strangerOrg]: 'owner' } }, 60_000)}` }
    const failures: string[] = []
    for (const r of apiRoutes().filter((r) => (r.config?.auth ?? 'jwt') === 'jwt')) {
      const res = await send(r, forged)
      if (res.statusCode !== 401) failures.push(`${key(r)} → ${res.statusCode}`)
    }
    expect(failures).toEqual([])
  })

  it('answers 403 on every organization route to an owner of another organization, whatever the body', async () => {
    const stranger = bearer({ [strangerOrg]: 'owner' })
    const failures: string[] = []
    for (const r of orgRoutes()) {
      const res = await send(r, stranger)
      if (res.statusCode !== 403) failures.push(`${key(r)} → ${res.statusCode}`)
      else if (r.method !== 'HEAD') expect(res.json()).toEqual({ error: { code: 'FORBIDDEN', message: expect.any(String) } })
    }
    expect(failures).toEqual([])
  })

  it('answers 403 on every write to organization routes for a viewer of that organization', async () => {
    const failures: string[] = []
    for (const r of orgRoutes().filter((r) => hasBody(r.method) || r.method === 'DELETE')) {
      const orgId = randomUUID()
      const res = await ctx.app.inject({
        method: r.method,
        url: fill(r.url.replace(':orgId', orgId)),
        headers: bearer({ [orgId]: 'viewer' }),
        payload: {}
      })
      if (res.statusCode !== 403) failures.push(`${key(r)} → ${res.statusCode}`)
    }
    expect(failures).toEqual([])
  })

  it('answers 403 on admin routes to a token without admin', async () => {
    const adminRoutes = routes.filter((r) => r.config?.admin === true)
    expect(adminRoutes.map(key)).toContain('POST /api/orgs')
    for (const r of adminRoutes) {
      const res = await send(r, bearer({ [strangerOrg]: 'owner' }))
      expect(res.statusCode, key(r)).toBe(403)
    }
  })
})
