import type { Registry } from 'prom-client'
import { fastBuckets, metricsOn } from '../../infra/metrics.js'

/** Every kind of Redis call the cache layer makes: the `operation` label (a closed list, so a typo cannot start a new series). */
export const cacheOperations = ['get', 'set', 'delete', 'fence', 'invalidate', 'invalidate_pattern', 'health', 'corrupt'] as const
export type CacheOperation = typeof cacheOperations[number]

/** The cache layer's own metrics (names fixed by the metrics reference in docs/operations.md). */
export function createCacheMetrics (registry: Registry) {
  const m = metricsOn(registry)
  const metrics = {
    errors: m.counter({ name: 'dashboard_cache_error_total', help: 'Failed cache operations (each falls back to PostgreSQL)', labelNames: ['operation'] as const }),
    latency: m.histogram({ name: 'dashboard_cache_latency_seconds', help: 'Latency of cache operations', labelNames: ['operation'] as const, buckets: fastBuckets }),
    invalidation: m.histogram({ name: 'dashboard_cache_invalidation_seconds', help: 'From the event to its invalidation completing', buckets: fastBuckets }),
    pendingInvalidations: m.gauge({ name: 'dashboard_cache_pending_invalidations', help: 'Organizations whose invalidation failed and is waiting to be replayed (they bypass the cache)' }),
    failoverFences: m.counter({ name: 'dashboard_cache_failover_fence_total', help: 'Primaries found replaced (a failover, or a slot moved): their entries go unused for CACHE_TTL_SECONDS (counted per slot on a cluster)' }),
    redisUp: m.gauge({ name: 'coldboard_redis_up', help: '1 while the cache connection is ready' })
  }
  // Every labelled series exists from the start at 0, so rates and alert rules see 0 rather than nothing.
  for (const operation of cacheOperations) metrics.errors.inc({ operation }, 0)
  return metrics
}
export type CacheMetrics = ReturnType<typeof createCacheMetrics>
