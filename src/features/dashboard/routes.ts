import { gunzipSync } from 'node:zlib'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { NotFoundError } from '../../errors.js'
import type { DashboardMetrics } from './metrics.js'
import { queryTypeNames, queryTypes, type Entry, type QueryType } from './query-types.js'
import type { ReadResult, ReadThrough } from './read-through.js'
import { OrgParams, UnitParams } from './schemas.js'

/** No dashboard payload comes near this (a unit's 24 h trend is ~25 KB of JSON). */
const MAX_INFLATED_BYTES = 8 * 1024 * 1024

const noCacheHeader = {
  type: 'object',
  properties: { 'cache-control': { type: 'string', description: '`no-cache` bypasses the cached copy and refreshes it' } }
} as const

/** One route per cached query type (query-types.ts): the stored JSON text goes out as is, with `x-cache`. */
export async function dashboardRoutes (fastify: FastifyInstance, opts: { readThrough: ReadThrough, metrics: DashboardMetrics }) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { readThrough, metrics } = opts

  /**
   * A hit from the in-process copy is answered without a promise (readLocal); anything else goes through the
   * read-through's `read`.
   */
  function serve (req: FastifyRequest, reply: FastifyReply, entry: Entry): FastifyReply | Promise<FastifyReply> {
    const started = performance.now()
    const refresh = /\bno-cache\b/i.test(req.headers['cache-control'] ?? '')
    const copy = refresh ? null : readThrough.readLocal(entry)
    if (copy) return send(req, reply, entry, copy, started)
    return readThrough.read(entry, { refresh }).then((result) => {
      if (!result) throw new NotFoundError('unit')
      return send(req, reply, entry, result, started)
    })
  }

  function send (req: FastifyRequest, reply: FastifyReply, entry: Entry, result: ReadResult, started: number): FastifyReply {
    metrics.requestSeconds.observe({ query_type: entry.queryType, cache: result.cache }, (performance.now() - started) / 1000)
    // JSON text (or bytes) with a JSON content type is sent as is: a hit is never parsed or re-serialised.
    // A compressed entry goes out compressed to a client that accepts gzip, else it is inflated once.
    void reply.header('x-cache', result.cache).header('cache-control', 'private, no-cache')
      .type('application/json; charset=utf-8')
    if (!result.gzip) return reply.send(result.body)
    void reply.header('vary', 'accept-encoding')
    if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      return reply.header('content-encoding', 'gzip').send(result.body)
    }
    // The envelope's CRC says coldboard compressed it; the bound still keeps a bad entry from filling memory.
    return reply.send(gunzipSync(result.body, { maxOutputLength: MAX_INFLATED_BYTES }))
  }

  const route = (queryType: QueryType) => {
    const def = queryTypes[queryType]
    const perUnitPath = def.scope === 'unit'
    app.get(def.route.url, {
      schema: {
        tags: ['dashboard'],
        operationId: def.route.operationId,
        summary: def.route.summary,
        params: perUnitPath ? UnitParams : OrgParams,
        ...('querystring' in def.route ? { querystring: def.route.querystring } : {}),
        headers: noCacheHeader,
        response: { 200: def.route.response }
      }
    }, (req, reply) => {
      const params = req.params as { orgId: string, unitId?: string }
      const query = req.query as { unitId?: string } | undefined
      const unitId = perUnitPath ? params.unitId : def.scope === 'org-or-unit' ? query?.unitId : undefined
      // (The response schemas document the shape; `never` keeps their typed return out of the way.)
      return serve(req, reply, { queryType, orgId: params.orgId.toLowerCase(), unitId: unitId?.toLowerCase() }) as never
    })
  }
  for (const queryType of queryTypeNames) route(queryType)
}
