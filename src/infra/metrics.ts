import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export const queryTypes = ['units_status', 'alerts_count', 'temperature_trends', 'devices_online', 'stats'] as const
export type QueryType = typeof queryTypes[number]

/** Every coldboard metric, on an injected registry (a fresh one per app in tests). Never an org label. */
export function createMetrics (registry = new Registry(), opts: { defaultMetrics?: boolean } = {}) {
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry })
  const r = [registry]
  const metrics = {
    registry,
    cacheHit: new Counter({ name: 'dashboard_cache_hit_total', help: 'Dashboard reads answered from Redis', labelNames: ['query_type'], registers: r }),
    cacheMiss: new Counter({ name: 'dashboard_cache_miss_total', help: 'Dashboard reads not found in Redis', labelNames: ['query_type'], registers: r }),
    cacheBypass: new Counter({ name: 'dashboard_cache_bypass_total', help: 'Dashboard reads served without the cache (disabled, unavailable, fenced or forced)', labelNames: ['query_type', 'reason'], registers: r }),
    cacheError: new Counter({ name: 'dashboard_cache_error_total', help: 'Failed cache operations (each falls back to PostgreSQL)', labelNames: ['operation'], registers: r }),
    cacheLatency: new Histogram({
      name: 'dashboard_cache_latency_seconds',
      help: 'Latency of cache operations',
      labelNames: ['operation'],
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: r
    }),
    invalidation: new Histogram({
      name: 'dashboard_cache_invalidation_seconds',
      help: 'From the event to its invalidation completing',
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: r
    }),
    dbLoad: new Counter({ name: 'dashboard_db_load_total', help: 'Dashboard queries actually run against PostgreSQL', labelNames: ['query_type'], registers: r }),
    dbLoadSeconds: new Histogram({
      name: 'dashboard_db_load_seconds',
      help: 'Duration of dashboard queries against PostgreSQL',
      labelNames: ['query_type'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r
    }),
    requestSeconds: new Histogram({
      name: 'dashboard_request_seconds',
      help: 'Dashboard HTTP request duration by query type and cache outcome',
      labelNames: ['query_type', 'cache'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: r
    }),
    readingsIngested: new Counter({ name: 'coldboard_readings_ingested_total', help: 'Readings stored', registers: r }),
    readingsDuplicate: new Counter({ name: 'coldboard_readings_duplicate_total', help: 'Readings already stored (same device and recordedAt)', registers: r }),
    ingestionPath: new Counter({ name: 'coldboard_ingestion_batches_total', help: 'Ingested batches by processing path', labelNames: ['path'], registers: r }),
    eventsEmitted: new Counter({ name: 'coldboard_events_emitted_total', help: 'Socket.io events emitted', labelNames: ['event'], registers: r }),
    redisUp: new Gauge({ name: 'coldboard_redis_up', help: '1 while the cache connection is ready', registers: r })
  }
  // Every labelled series exists from the start at 0, so rates and ratios (the hit rate, the alert rules)
  // are 0 rather than empty on an instance that has not seen that case yet.
  for (const qt of queryTypes) {
    metrics.cacheHit.inc({ query_type: qt }, 0)
    metrics.cacheMiss.inc({ query_type: qt }, 0)
    metrics.dbLoad.inc({ query_type: qt }, 0)
    for (const reason of bypassReasons) metrics.cacheBypass.inc({ query_type: qt, reason }, 0)
  }
  for (const operation of cacheOperations) metrics.cacheError.inc({ operation }, 0)
  return metrics
}

export const bypassReasons = ['disabled', 'unavailable', 'error', 'pending_invalidation', 'refresh'] as const
export const cacheOperations = ['get', 'set', 'delete', 'fence', 'invalidate', 'invalidate_pattern', 'health', 'corrupt'] as const
export type Metrics = ReturnType<typeof createMetrics>
