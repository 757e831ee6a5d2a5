import type { FastifyBaseLogger } from 'fastify'
import type { Db, Tx } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'
import type { ChangeEvent } from '../changes/events.js'
import type { ChangePipeline } from '../changes/pipeline.js'
import { sweepEscalations, sweepOfflineDevices, sweepOfflineUnits } from './sweep.js'
import { processUnit, reevaluate, type ProcessorDeps } from './unit-processor.js'

export interface MonitoringOptions {
  /** Builds the statements of a unit's evaluation (sent by the change pipeline's batched transaction). */
  db: Db
  changes: ChangePipeline
  clock: Clock
  offlineAfterMinutes: number
  confirmMinutes: number
  log: FastifyBaseLogger
  /** Units processed at once by processUnits; each holds one pooled connection for its transaction. */
  concurrency?: number
}

/**
 * Unit state, the alert lifecycle and device status: the one path that ingestion, unit edits and the sweeper
 * take. Each change is a unit of work on the write path (src/features/changes/pipeline.ts).
 */
export function createMonitoringService (opts: MonitoringOptions) {
  const { clock, changes, log } = opts
  const deps: ProcessorDeps = { clock, offlineAfterMinutes: opts.offlineAfterMinutes, confirmMinutes: opts.confirmMinutes }
  const concurrency = Math.max(1, opts.concurrency ?? 4)
  const commit = (work: (tx: Tx) => Promise<ChangeEvent[]>) => changes.commit(async (tx) => ({ value: undefined, events: await work(tx) }))

  return {
    /**
     * Re-evaluates a unit inside the caller's transaction after its thresholds or isActive changed; the caller
     * publishes the events it returns with its own change (src/features/management/service.ts).
     */
    reevaluateIn: (tx: Tx, orgId: string, unitId: string): Promise<ChangeEvent[]> => reevaluate(tx, deps, orgId, unitId),

    /**
     * Applies the stored, not yet applied readings of each unit (one unit of work per unit). Every unit is
     * attempted; the first failure is rethrown afterwards so a queue can retry (retrying only catches up).
     * Returns the units the organization does not have (nothing was done for them).
     */
    async processUnits (orgId: string, unitIds: string[]): Promise<string[]> {
      const queue = [...new Set(unitIds)]
      const failures: unknown[] = []
      const missing: string[] = []
      const worker = async () => {
        for (let unitId = queue.shift(); unitId !== undefined; unitId = queue.shift()) {
          try {
            const found = await changes.commitBatch(async (tx) => {
              const { events, beforeCommit } = await processUnit(tx, opts.db, deps, orgId, unitId)
              return { value: { value: events !== null, events: events ?? [] }, beforeCommit }
            })
            if (!found) missing.push(unitId)
          } catch (err) {
            log.error({ err, organizationId: orgId, unitId }, 'processing readings failed')
            failures.push(err)
          }
        }
      }
      await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker))
      if (failures.length > 0) throw failures[0]
      return missing
    },

    /** Time-driven transitions: silent units and devices go offline, long excursions escalate; each its own unit of work. */
    async sweep (): Promise<void> {
      const now = clock.now()
      const offlineCutoff = new Date(now.getTime() - opts.offlineAfterMinutes * 60_000)
      await commit((tx) => sweepOfflineUnits(tx, deps, now, offlineCutoff))
      await commit((tx) => sweepOfflineDevices(tx, offlineCutoff))
      await commit((tx) => sweepEscalations(tx, deps, now))
    }
  }
}
export type MonitoringService = ReturnType<typeof createMonitoringService>
