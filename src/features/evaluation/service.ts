import type { FastifyBaseLogger } from 'fastify'
import type { Db } from '../../infra/postgres.js'
import type { Metrics } from '../../infra/metrics.js'
import { metricsOn } from '../../infra/metrics.js'
import type { Clock } from '../../lib/clock.js'
import type { MonitoringService } from '../monitoring/service.js'
import { UnresolvableJobError, type IngestionQueue, type ProcessJob } from '../queue/ingestion-queue.js'
import { findUnevaluated, jobResolves } from './reconciler.js'

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** Readings received this long ago and still unevaluated are the reconciler's (younger ones are their job's). */
export const RECONCILE_GRACE_MS = 60_000

/**
 * Where stored readings get evaluated (unit state, alerts, events): on the queue when it takes the job, else
 * right here, so that an accepted reading is always evaluated; a job that ran out of retries is caught up by the
 * reconciler. A job naming an organization or units that do not exist is refused loudly, never completed.
 */
export function createEvaluation (opts: {
  db: Db
  clock: Clock
  queue: IngestionQueue | null
  monitoring: MonitoringService
  metrics: Metrics
  log: FastifyBaseLogger
  /** QUEUE_STALL_SECONDS: a job waiting longer means no worker is taking jobs. */
  stallSeconds: number
}) {
  const { db, clock, queue, monitoring, metrics } = opts
  const log = opts.log.child({ component: 'evaluation' })
  const m = metricsOn(metrics.registry)
  const reconciled = m.counter({ name: 'coldboard_readings_reconciled_units_total', help: 'Units whose stored readings were found unevaluated and evaluated by the reconciler' })
  const unresolvable = m.counter({ name: 'coldboard_jobs_unresolvable_total', help: 'Evaluation jobs naming an organization or units that do not exist (failed, never completed)' })
  const localUpkeeps = m.counter({ name: 'coldboard_local_upkeep_total', help: 'Sweeper ticks that swept and reconciled in this process because the queue was unavailable or stalled', labelNames: ['reason'] })
  const workerRestarts = m.counter({ name: 'coldboard_queue_worker_restarts_total', help: "This process's queue workers replaced because they took no job while jobs waited: past QUEUE_STALL_SECONDS, or 5 s after their connection came back" })
  queue?.onWorkersReplaced(() => workerRestarts.inc())

  /** Evaluates the units whose readings were stored but never evaluated; how many. */
  async function reconcile (): Promise<number> {
    const found = await findUnevaluated(db, new Date(clock.now().getTime() - RECONCILE_GRACE_MS))
    let units = 0
    for (const [orgId, unitIds] of found) {
      try {
        await monitoring.processUnits(orgId, unitIds)
        units += unitIds.length
      } catch (err) {
        log.error({ err, organizationId: orgId }, 'reconciliation failed; retried next period')
      }
    }
    if (units > 0) {
      reconciled.inc(units)
      log.warn({ units }, 'evaluated readings that had been stored but not evaluated')
    }
    return units
  }

  return {
    async submit (job: ProcessJob): Promise<'queue' | 'inline'> {
      if (job.unitIds.length === 0) return 'inline'
      if (queue && await queue.enqueue(job)) {
        metrics.ingestionPath.inc({ path: 'queue' })
        return 'queue'
      }
      metrics.ingestionPath.inc({ path: 'inline' })
      try {
        await monitoring.processUnits(job.organizationId, job.unitIds)
      } catch (err) {
        log.error({ err, organizationId: job.organizationId }, 'readings stored but not evaluated yet (the reconciler catches up)')
      }
      return 'inline'
    },

    /**
     * A queued job, in the worker: refused (UnresolvableJobError) unless coldboard itself could have made it, and
     * then nothing of it is evaluated. A job of one unit (a device's reading: the usual job) is checked by the unit's
     * own lock, which finds it only in that organization (one round trip fewer); a job of several is checked whole first.
     */
    async evaluate (job: ProcessJob): Promise<void> {
      const ids = Array.isArray(job?.unitIds) ? job.unitIds : []
      const refuse = (): never => {
        unresolvable.inc()
        log.error({ job }, 'evaluation job names an organization or units that do not exist: failed (another deployment sharing this Redis and queue prefix?)')
        throw new UnresolvableJobError(`no organization ${String(job?.organizationId)} with units ${ids.join(', ')}`)
      }
      const wellFormed = typeof job?.organizationId === 'string' && uuidRe.test(job.organizationId) && ids.length > 0 && ids.every((u) => typeof u === 'string' && uuidRe.test(u))
      if (!wellFormed) refuse()
      const oneUnit = new Set(ids).size === 1
      if (!oneUnit && !await jobResolves(db, job.organizationId, ids)) refuse()
      const missing = await monitoring.processUnits(job.organizationId, ids)
      if (oneUnit && missing.length > 0) refuse()
    },

    /**
     * One tick of the local sweeper. While the queue's workers take jobs it does nothing (the repeatable jobs
     * sweep and reconcile). When Redis is unavailable, or jobs have waited past QUEUE_STALL_SECONDS (every
     * worker gone or stuck), it sweeps and reconciles here, so time still moves unit states and accepted
     * readings still get evaluated; and if this process's own worker took no job meanwhile, it is replaced.
     * While the queue is stalled but Redis answers, one process of the deployment per sweep interval does the
     * upkeep ('elsewhere' on the others); with Redis unavailable every process does it (nothing to share a lease).
     */
    async localUpkeep (): Promise<'queue' | 'unavailable' | 'stalled' | 'elsewhere'> {
      let reason: 'unavailable' | 'stalled' = 'unavailable'
      if (queue?.ready()) {
        const stats = await queue.stats()
        // null: Redis could not answer the count either, so it is treated as unavailable.
        if (stats !== null) {
          if (stats.oldestWaitingSeconds <= opts.stallSeconds) return 'queue'
          reason = 'stalled'
          const idle = queue.workerIdleMs()
          if (idle !== null && idle > opts.stallSeconds * 1000) {
            log.warn({ idleSeconds: Math.round(idle / 1000) }, "evaluation jobs wait past QUEUE_STALL_SECONDS and this process's queue worker took none meanwhile: replacing it")
            await queue.restartWorkers()
          }
          // One process per sweep interval does the upkeep (the lease), not every one: with workers merely behind,
          // N reconcilers would scan for and lock the same units.
          if (!await queue.claimLocalUpkeep()) return 'elsewhere'
          log.warn({ oldestWaitingSeconds: stats.oldestWaitingSeconds, waiting: stats.waiting }, 'evaluation jobs wait past QUEUE_STALL_SECONDS: sweeping and reconciling in this process')
        }
      }
      localUpkeeps.inc({ reason })
      await monitoring.sweep()
      await reconcile()
      return reason
    },

    /** Evaluates the units whose readings were stored but never evaluated; how many. */
    reconcile
  }
}
export type Evaluation = ReturnType<typeof createEvaluation>
