import { gunzipSync } from 'node:zlib'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { NotFoundError } from '../../errors.js'
import type { Entry } from '../cache/keys.js'
import type { DashboardCache } from '../cache/dashboard-cache.js'
import { AlertCountQuery, AlertCounts, DashboardStats, DeviceCounts, OrgParams, TemperatureTrend, UnitCounts, UnitParams } from './schemas.js'

const tags = ['dashboard']
const noCacheHeader = {
  type: 'object',
  properties: { 'cache-control': { type: 'string', description: '`no-cache` bypasses the cached copy and refreshes it' } }
} as const

/** The cached dashboard reads (SPEC §3): the stored JSON text goes out as is, with `x-cache`. */
export async function dashboardRoutes (fastify: FastifyInstance, opts: { cache: DashboardCache }) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { metrics } = app

  async function serve (req: FastifyRequest, reply: FastifyReply, entry: Entry, what = 'unit'): Promise<never> {
    const refresh = /\bno-cache\b/i.test(req.headers['cache-control'] ?? '')
    const end = metrics.requestSeconds.startTimer({ query_type: entry.queryType })
    const result = await opts.cache.read(entry, { refresh })
    if (!result) throw new NotFoundError(what)
    end({ cache: result.cache })
    // JSON text (or bytes) with a JSON content type is sent as is: a hit is never parsed or re-serialised.
    // A compressed entry goes out compressed to a client that accepts gzip, else it is inflated once.
    // (The response schemas document the shape; `never` keeps their typed return out of the way.)
    void reply.header('x-cache', result.cache).header('cache-control', 'private, no-cache')
      .type('application/json; charset=utf-8')
    if (!result.gzip) return reply.send(result.body) as never
    void reply.header('vary', 'accept-encoding')
    if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      return reply.header('content-encoding', 'gzip').send(result.body) as never
    }
    return reply.send(gunzipSync(result.body)) as never
  }

  app.get('/api/orgs/:orgId/dashboard', {
    schema: { tags, summary: 'Organization overview', params: OrgParams, headers: noCacheHeader, response: { 200: DashboardStats } }
  }, (req, reply) => serve(req, reply, { queryType: 'stats', orgId: req.params.orgId.toLowerCase() }))

  app.get('/api/orgs/:orgId/dashboard/units/status', {
    schema: { tags, summary: 'Active units by state', params: OrgParams, headers: noCacheHeader, response: { 200: UnitCounts } }
  }, (req, reply) => serve(req, reply, { queryType: 'units_status', orgId: req.params.orgId.toLowerCase() }))

  app.get('/api/orgs/:orgId/dashboard/alerts/count', {
    schema: { tags, summary: 'Open alert counts, for the organization or one unit', params: OrgParams, querystring: AlertCountQuery, headers: noCacheHeader, response: { 200: AlertCounts } }
  }, (req, reply) => serve(req, reply, { queryType: 'alerts_count', orgId: req.params.orgId.toLowerCase(), unitId: req.query.unitId?.toLowerCase() }))

  app.get('/api/orgs/:orgId/dashboard/devices/online', {
    schema: { tags, summary: 'Devices online and offline', params: OrgParams, headers: noCacheHeader, response: { 200: DeviceCounts } }
  }, (req, reply) => serve(req, reply, { queryType: 'devices_online', orgId: req.params.orgId.toLowerCase() }))

  app.get('/api/orgs/:orgId/units/:unitId/temperature-trends', {
    schema: { tags, summary: 'Last 24 h of a unit in 5-minute buckets', params: UnitParams, headers: noCacheHeader, response: { 200: TemperatureTrend } }
  }, (req, reply) => serve(req, reply, { queryType: 'temperature_trends', orgId: req.params.orgId.toLowerCase(), unitId: req.params.unitId.toLowerCase() }))
}
