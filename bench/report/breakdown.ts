import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'

export const breakdownSteps = ['appPublicConstant', 'appAuthConstant', 'appAuthIoredisGet', 'appAuthIoredisAutoPipelined'] as const
export type BreakdownStep = typeof breakdownSteps[number]

export const breakdownDescriptions: Record<BreakdownStep, string> = {
  appPublicConstant: 'the app, a route outside /api sending the payload as a constant (the app\'s hooks run and return early: no security headers, no authentication)',
  appAuthConstant: 'the app, an /api/orgs/:orgId route sending the constant (+ the JSON security headers, the JWT (remembered), the request budget, :orgId validation and authorization)',
  appAuthIoredisGet: '… + one GET on an ioredis connection (command timeout, no offline queue, no auto-pipelining)',
  appAuthIoredisAutoPipelined: '… the same GET with ioredis enableAutoPipelining'
}

/**
 * Routes that add the dashboard hit's ingredients one at a time, on coldboard's own app, so the gap between
 * the bare route and a cached read is measured step by step instead of guessed.
 */
export function registerBreakdownRoutes (app: FastifyInstance, o: { redisUrl: string, commandTimeoutMs: number, key: string, body: () => string }) {
  const base = { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: o.commandTimeoutMs }
  const plain = new Redis(o.redisUrl, base)
  const pipelined = new Redis(o.redisUrl, { ...base, enableAutoPipelining: true })
  const json = 'application/json; charset=utf-8'
  const params = { type: 'object', properties: { orgId: { type: 'string', format: 'uuid' } }, required: ['orgId'] } as const
  app.get('/bench-breakdown/constant', { config: { auth: 'public' } }, (_req, reply) => { void reply.type(json).send(o.body()) })
  app.get('/api/orgs/:orgId/bench-breakdown/constant', { schema: { params, hide: true } }, (_req, reply) => { void reply.type(json).send(o.body()) })
  app.get('/api/orgs/:orgId/bench-breakdown/ioredis', { schema: { params, hide: true } }, async (_req, reply) => reply.type(json).send(await plain.get(o.key)))
  app.get('/api/orgs/:orgId/bench-breakdown/ioredis-auto', { schema: { params, hide: true } }, async (_req, reply) => reply.type(json).send(await pipelined.get(o.key)))
  return {
    path (orgId: string, step: BreakdownStep): string {
      switch (step) {
        case 'appPublicConstant': return '/bench-breakdown/constant'
        case 'appAuthConstant': return `/api/orgs/${orgId}/bench-breakdown/constant`
        case 'appAuthIoredisGet': return `/api/orgs/${orgId}/bench-breakdown/ioredis`
        case 'appAuthIoredisAutoPipelined': return `/api/orgs/${orgId}/bench-breakdown/ioredis-auto`
      }
    },
    close () { plain.disconnect(); pipelined.disconnect() }
  }
}
