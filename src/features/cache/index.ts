import fp from 'fastify-plugin'
import { createFailurePolicy } from './failure-policy.js'
import { createCacheMetrics } from './metrics.js'
import { createCacheStore, setCacheStore, type CacheStore } from './store.js'

declare module 'fastify' {
  interface FastifyInstance {
    cache: CacheStore
    /** Redis' eviction policy as last read (BullMQ needs noeviction); null until read or when CONFIG is refused. */
    redisPolicy: { maxmemoryPolicy: string | null }
  }
}

/**
 * The generic Redis cache (src/features/cache/store.ts), registered before every service that uses it:
 * decorates `cache`, sets the process-wide instance, and on every (re)connection reads `maxmemory-policy`,
 * warning when it is not noeviction (the queue shares this Redis).
 */
export default fp(async function cachePlugin (app) {
  const log = app.log.child({ component: 'cache' })
  const connection = app.redis?.connection('cache') ?? null
  const replication = app.config.redisWait
  // Invalidations that WAIT for a replica get a connection of their own: a WAIT blocks its connection, and the
  // dashboard reads on `cache` must not queue behind it. Without replicas to wait for, one connection does both.
  const writer = app.redis && replication.replicas > 0 ? app.redis.connection('cache-write') : connection
  const metrics = createCacheMetrics(app.metrics.registry)
  const cache = createCacheStore({
    redis: connection,
    writer,
    ttlSeconds: app.config.CACHE_TTL_SECONDS,
    metrics,
    failures: createFailurePolicy({ metrics, log }),
    replication,
    sharded: app.redis?.sharded ?? false
  })
  setCacheStore(cache)
  app.decorate('cache', cache)
  const policy = { maxmemoryPolicy: null as string | null }
  app.decorate('redisPolicy', policy)

  if (connection) {
    metrics.redisUp.set(0)
    connection.on('ready', () => {
      metrics.redisUp.set(1)
      connection.config('GET', 'maxmemory-policy').then((res) => {
        const value = Array.isArray(res) ? String(res[1] ?? '') : ''
        policy.maxmemoryPolicy = value || null
        if (value && value !== 'noeviction') {
          log.warn({ maxmemoryPolicy: value }, 'Redis maxmemory-policy is not noeviction: BullMQ jobs can be evicted (set maxmemory-policy noeviction)')
        }
      }).catch(() => { policy.maxmemoryPolicy = null })
    })
    connection.on('close', () => metrics.redisUp.set(0))
  }
  app.addHook('onClose', async () => { setCacheStore(null) })
}, { name: 'cache', dependencies: ['core', 'redis'], decorators: { fastify: ['config', 'metrics', 'redis'] } })
