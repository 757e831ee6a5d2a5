import fp from 'fastify-plugin'
import { createCacheService, setCacheService, type CacheService } from './cache-service.js'

declare module 'fastify' {
  interface FastifyInstance {
    cache: CacheService
    /** Redis' eviction policy as last read (BullMQ needs noeviction); null until read or when CONFIG is refused. */
    redisPolicy: { maxmemoryPolicy: string | null }
  }
}

/**
 * Registered before every service that reads the cache (D8, D15): decorates `cache`, sets the
 * singleton, and on every (re)connection reads `maxmemory-policy`, warning when it is not noeviction.
 */
export default fp(async function cachePlugin (app) {
  const connection = app.redis?.connection('cache') ?? null
  const cache = createCacheService({ redis: connection, ttlSeconds: app.config.CACHE_TTL_SECONDS, metrics: app.metrics, log: app.log })
  setCacheService(cache)
  app.decorate('cache', cache)
  const policy = { maxmemoryPolicy: null as string | null }
  app.decorate('redisPolicy', policy)
  const log = app.log.child({ component: 'cache' })

  if (connection) {
    app.metrics.redisUp.set(0)
    connection.on('ready', () => {
      app.metrics.redisUp.set(1)
      connection.config('GET', 'maxmemory-policy').then((res) => {
        const value = Array.isArray(res) ? String(res[1] ?? '') : ''
        policy.maxmemoryPolicy = value || null
        if (value && value !== 'noeviction') {
          log.warn({ maxmemoryPolicy: value }, 'Redis maxmemory-policy is not noeviction: BullMQ jobs can be evicted (set maxmemory-policy noeviction)')
        }
      }).catch(() => { policy.maxmemoryPolicy = null })
    })
    connection.on('close', () => app.metrics.redisUp.set(0))
  }
  app.addHook('onClose', async () => { setCacheService(null) })
}, { name: 'cache', dependencies: ['core', 'redis'] })
