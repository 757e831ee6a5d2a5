import fp from 'fastify-plugin'
import { Type } from 'typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'

const Check = Type.Object({ ok: Type.Boolean(), latencyMs: Type.Number(), error: Type.Optional(Type.String()) })
const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded'), Type.Literal('down')]),
  checks: Type.Object({
    database: Check,
    redis: Type.Intersect([Check, Type.Object({ enabled: Type.Boolean(), maxmemoryPolicy: Type.Union([Type.String(), Type.Null()]), warning: Type.Optional(Type.String()) })]),
    cache: Type.Intersect([Check, Type.Object({ enabled: Type.Boolean(), ttlSeconds: Type.Integer() })]),
    queue: Type.Intersect([Check, Type.Object({
      enabled: Type.Boolean(),
      waiting: Type.Optional(Type.Integer({ description: 'evaluation jobs waiting' })),
      failed: Type.Optional(Type.Integer({ description: 'evaluation jobs out of retries (their readings are reconciled)' })),
      oldestWaitingSeconds: Type.Optional(Type.Number({ description: 'age of the oldest waiting job' })),
      warning: Type.Optional(Type.String())
    })])
  })
})

const Status = Type.Object({ status: Type.Union([Type.Literal('ok'), Type.Literal('down')]) })

async function timed (fn: () => Promise<unknown>): Promise<{ ok: boolean, latencyMs: number, error?: string }> {
  const start = performance.now()
  try {
    await fn()
    return { ok: true, latencyMs: round(performance.now() - start) }
  } catch (err) {
    return { ok: false, latencyMs: round(performance.now() - start), error: (err as Error).message }
  }
}
const round = (ms: number) => Math.round(ms * 100) / 100

/**
 * /health (D14): database, redis, cache and queue, each `{ ok, latencyMs }`; degraded while Redis is down or the
 * evaluation queue stalls (its oldest job waiting past QUEUE_STALL_SECONDS), 503 only when the database is down. /health/live and /health/ready for orchestrators, /metrics for Prometheus.
 */
export default fp(async function healthPlugin (fastify) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const tags = ['operations']

  async function report () {
    const redisEnabled = app.redis !== null
    const [database, cache, queue, jobs] = await Promise.all([
      timed(() => app.database.ping()),
      app.cache.healthCheck(),
      app.queue ? app.queue.healthCheck() : Promise.resolve({ ok: false, latencyMs: 0 }),
      app.queue ? app.queue.stats() : Promise.resolve(null)
    ])
    // Jobs waiting longer than QUEUE_STALL_SECONDS: no worker is consuming (or they cannot keep up).
    const stalled = jobs !== null && jobs.oldestWaitingSeconds > app.config.QUEUE_STALL_SECONDS
    const policy = app.redisPolicy.maxmemoryPolicy
    const redis = {
      ok: cache.ok,
      latencyMs: cache.latencyMs,
      enabled: redisEnabled,
      maxmemoryPolicy: policy,
      ...(policy && policy !== 'noeviction' ? { warning: `maxmemory-policy is ${policy}: BullMQ needs noeviction` } : {})
    }
    const redisHealthy = !redisEnabled || (cache.ok && queue.ok && !stalled)
    const status = !database.ok ? 'down' as const : redisHealthy ? 'ok' as const : 'degraded' as const
    return {
      status,
      checks: {
        database,
        redis,
        cache: { ...cache, enabled: app.cache.isEnabled(), ttlSeconds: app.config.CACHE_TTL_SECONDS },
        queue: {
          ...queue,
          enabled: app.queue !== null,
          ...(jobs ? { waiting: jobs.waiting, failed: jobs.failed, oldestWaitingSeconds: jobs.oldestWaitingSeconds } : {}),
          ...(stalled ? { warning: `the oldest evaluation job has waited ${jobs.oldestWaitingSeconds} s (more than QUEUE_STALL_SECONDS): is a worker running?` } : {})
        }
      }
    }
  }

  app.get('/health', { schema: { tags, operationId: 'getHealth', summary: 'Health of the service and its dependencies', response: { 200: Health, 503: Health } } }, async (_req, reply) => {
    const body = await report()
    return reply.status(body.status === 'down' ? 503 : 200).send(body)
  })
  app.get('/health/live', { schema: { tags, operationId: 'getLiveness', summary: 'Liveness: the process answers', response: { 200: Status } } }, async () => ({ status: 'ok' as const }))
  app.get('/health/ready', { schema: { tags, operationId: 'getReadiness', summary: 'Readiness: the database answers', response: { 200: Status, 503: Status } } }, async (_req, reply) => {
    const db = await timed(() => app.database.ping())
    return reply.status(db.ok ? 200 : 503).send({ status: db.ok ? 'ok' : 'down' })
  })
  app.get('/metrics', { schema: { tags, operationId: 'getMetrics', summary: 'Prometheus metrics', response: { 200: { type: 'string', description: 'Prometheus text exposition format' } } } }, async (_req, reply) => {
    return reply.type(app.metrics.registry.contentType).send(await app.metrics.registry.metrics())
  })
}, { name: 'health', dependencies: ['core', 'redis', 'cache', 'queue'], decorators: { fastify: ['config', 'database', 'metrics', 'redis', 'redisPolicy', 'cache', 'queue'] } })
