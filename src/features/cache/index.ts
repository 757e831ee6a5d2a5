import fp from 'fastify-plugin'
import { connectCacheStore } from './connect.js'
import { createCacheMetrics } from './metrics.js'
import { setCacheStore, type CacheStore } from './store.js'

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
  const metrics = createCacheMetrics(app.metrics.registry)
  const { store: cache, connection } = connectCacheStore({ redis: app.redis, ttlSeconds: app.config.CACHE_TTL_SECONDS, metrics, log })
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
