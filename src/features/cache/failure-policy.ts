import type { FastifyBaseLogger } from 'fastify'
import type { CacheMetrics, CacheOperation } from './metrics.js'

/**
 * The cache's one answer to a Redis fault (the design's graceful degradation): log it (at most once per
 * operation every 10 s, so an outage is not a log storm), count it in dashboard_cache_error_total, and let
 * the caller fall back to PostgreSQL. Every Redis call of the cache layer goes through here.
 */
export function createFailurePolicy (opts: { metrics: CacheMetrics, log: FastifyBaseLogger, throttleMs?: number }) {
  const { metrics, log } = opts
  const throttleMs = opts.throttleMs ?? 10_000
  const lastLogged = new Map<CacheOperation, number>()

  function report (operation: CacheOperation, err: unknown, fields: Record<string, unknown> = {}): void {
    metrics.errors.inc({ operation })
    const now = Date.now()
    if ((lastLogged.get(operation) ?? -Infinity) + throttleMs > now) return
    lastLogged.set(operation, now)
    log.warn({ operation, ...fields, err: err instanceof Error ? err.message : String(err) }, 'cache operation failed, using PostgreSQL')
  }

  return {
    report,
    /** Runs `fn` under the operation's latency timer; a failure is reported and answered with `fallback`. */
    async attempt<T> (operation: CacheOperation, fallback: T, fn: () => Promise<T>): Promise<T> {
      const end = metrics.latency.startTimer({ operation })
      try {
        return await fn()
      } catch (err) {
        report(operation, err)
        return fallback
      } finally {
        end()
      }
    },
    /** Like `attempt`, but the failure is rethrown after it is counted: for callers that must remember it (invalidations). */
    async required<T> (operation: CacheOperation, fn: () => Promise<T>): Promise<T> {
      const end = metrics.latency.startTimer({ operation })
      try {
        return await fn()
      } catch (err) {
        report(operation, err)
        throw err
      } finally {
        end()
      }
    }
  }
}
export type FailurePolicy = ReturnType<typeof createFailurePolicy>
