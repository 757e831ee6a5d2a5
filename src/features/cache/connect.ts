import type { FastifyBaseLogger } from 'fastify'
import type { RedisInfra } from '../../infra/redis.js'
import { createFailoverFence } from './failover-fence.js'
import { createFailurePolicy } from './failure-policy.js'
import type { CacheMetrics } from './metrics.js'
import { createCacheStore } from './store.js'

/**
 * The cache store on its connections, as the app runs it for the deployment's Redis: one connection for one
 * server or Sentinel; on a cluster three clients — reads (auto-pipelined), entry writes (following no
 * redirection) and invalidations (following MOVED and ASK) — sharded pub/sub, and the failover fence watching slots (a cluster) or the primary's address (one server,
 * Sentinel).
 */
export function connectCacheStore (opts: { redis: RedisInfra | null, ttlSeconds: number, metrics: CacheMetrics, log: FastifyBaseLogger }) {
  const { redis, metrics, log, ttlSeconds } = opts
  const connection = redis?.connection('cache') ?? null
  const mode = redis?.mode ?? 'standalone'
  const cluster = redis !== null && mode === 'cluster'
  const writer = cluster ? redis.connection('cache-write') : connection
  const filler = cluster ? redis.connection('cache-fill') : connection
  const seen = new Set<string>()
  const failover = createFailoverFence({
    watch: connection === null ? 'none' : mode === 'cluster' ? 'slots' : 'address',
    fenceMs: ttlSeconds * 1000,
    onFenced: (from, to) => {
      metrics.failoverFences.inc()
      // Once per change of primary (a cluster failover fences thousands of slots, one by one as they are used).
      if (seen.has(`${from}>${to}`)) return
      seen.add(`${from}>${to}`)
      log.warn({ from, to, seconds: ttlSeconds }, 'Redis primary replaced (failover or slot move): its entries go unused for one TTL')
    }
  })
  const store = createCacheStore({
    redis: connection,
    writer,
    filler,
    ttlSeconds,
    metrics,
    failures: createFailurePolicy({ metrics, log }),
    failover,
    sharded: redis?.sharded ?? false
  })
  return { store, connection, writer, filler }
}
