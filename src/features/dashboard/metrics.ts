import type { Registry } from 'prom-client'
import { metricsOn, slowBuckets } from '../../infra/metrics.js'
import { queryTypeNames } from './query-types.js'

/** Why a read was served without the cache: the `reason` label of dashboard_cache_bypass_total. */
export const bypassReasons = ['disabled', 'unavailable', 'error', 'pending_invalidation', 'failover', 'refresh'] as const
export type BypassReason = typeof bypassReasons[number]
/** Why an entry was reloaded without a reader waiting for it: the `reason` label of dashboard_cache_refresh_total. */
export const refreshReasons = ['event', 'ahead', 'compliance'] as const
export type RefreshReason = typeof refreshReasons[number]

/** The dashboard's read metrics; the `query_type` series come from the registry (query-types.ts). */
export function createDashboardMetrics (registry: Registry) {
  const m = metricsOn(registry)
  const labelNames = ['query_type'] as const
  const metrics = {
    hit: m.counter({ name: 'dashboard_cache_hit_total', help: 'Dashboard reads answered from Redis', labelNames }),
    localHit: m.counter({ name: 'dashboard_cache_local_hit_total', help: 'Dashboard hits answered from the in-process copy of the Redis entry (also counted in dashboard_cache_hit_total)', labelNames }),
    miss: m.counter({ name: 'dashboard_cache_miss_total', help: 'Dashboard reads not found in Redis that started a load', labelNames }),
    coalesced: m.counter({ name: 'dashboard_cache_coalesced_total', help: 'Dashboard reads not found in Redis that joined a load already in flight (neither a hit nor a load of their own)', labelNames }),
    refresh: m.counter({ name: 'dashboard_cache_refresh_total', help: 'Entries reloaded with no reader waiting: after an event deleted them, ahead of their expiry, the overview\'s compliance figure', labelNames: ['query_type', 'reason'] as const }),
    bypass: m.counter({ name: 'dashboard_cache_bypass_total', help: 'Dashboard reads served without the cache (disabled, unavailable, fenced or forced)', labelNames: ['query_type', 'reason'] as const }),
    dbLoad: m.counter({ name: 'dashboard_db_load_total', help: 'Dashboard queries actually run against PostgreSQL', labelNames }),
    dbLoadSeconds: m.histogram({ name: 'dashboard_db_load_seconds', help: 'Duration of dashboard queries against PostgreSQL', labelNames, buckets: slowBuckets }),
    requestSeconds: m.histogram({
      name: 'dashboard_request_seconds',
      help: 'Dashboard HTTP request duration by query type and cache outcome',
      labelNames: ['query_type', 'cache'] as const,
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    })
  }
  for (const qt of queryTypeNames) {
    metrics.hit.inc({ query_type: qt }, 0)
    metrics.localHit.inc({ query_type: qt }, 0)
    metrics.miss.inc({ query_type: qt }, 0)
    metrics.coalesced.inc({ query_type: qt }, 0)
    for (const reason of refreshReasons) if (reason !== 'compliance' || qt === 'stats') metrics.refresh.inc({ query_type: qt, reason }, 0)
    metrics.dbLoad.inc({ query_type: qt }, 0)
    for (const reason of bypassReasons) metrics.bypass.inc({ query_type: qt, reason }, 0)
  }
  return metrics
}
export type DashboardMetrics = ReturnType<typeof createDashboardMetrics>
