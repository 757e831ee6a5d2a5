import type { FastifyBaseLogger } from 'fastify'
import type { Db } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'
import type { EventPublisher } from '../events/publisher.js'
import type { ChangeEvent } from '../events/types.js'
import { sweepEscalations, sweepOfflineDevices, sweepOfflineUnits } from './sweep.js'
import { processUnit, reevaluate, type ProcessorDeps } from './unit-processor.js'

export interface MonitoringOptions {
  db: Db
  clock: Clock
  events: EventPublisher
  offlineAfterMinutes: number
  confirmMinutes: number
  log: FastifyBaseLogger
  /** Units processed at once by processUnits; each holds one pooled connection for its transaction. */
  concurrency?: number
}

/**
 * Unit state, the alert lifecycle and device status: the one path that ingestion, PATCH unit and
 * the sweeper take. Every change commits in its own transaction and is published afterwards.
 */
export function createMonitoringService (opts: MonitoringOptions) {
  const { clock, events, log } = opts
  const deps: ProcessorDeps = {
    db: opts.db,
    clock,
    offlineAfterMinutes: opts.offlineAfterMinutes,
    confirmMinutes: opts.confirmMinutes
  }
  const concurrency = Math.max(1, opts.concurrency ?? 4)

  async function commitThenPublish (change: () => Promise<ChangeEvent[]>): Promise<void> {
    const committed = await change()
    await events.publish(committed)
  }

  return {
    /** Re-evaluates a unit's state from its last temperature (thresholds or isActive changed); publishes what changed. */
    async reevaluateUnit (orgId: string, unitId: string): Promise<void> {
      await commitThenPublish(() => reevaluate(deps, orgId, unitId))
    },

    /**
     * Applies the stored, not yet applied readings of each unit (one transaction per unit) and
     * publishes the result. Every unit is attempted; the first failure is rethrown afterwards so a
     * queue can retry (retrying is safe: processing only catches up).
     */
    async processUnits (orgId: string, unitIds: string[]): Promise<void> {
      const queue = [...new Set(unitIds)]
      const failures: unknown[] = []
      const worker = async () => {
        for (let unitId = queue.shift(); unitId !== undefined; unitId = queue.shift()) {
          try {
            await commitThenPublish(() => processUnit(deps, orgId, unitId))
          } catch (err) {
            log.error({ err, organizationId: orgId, unitId }, 'processing readings failed')
            failures.push(err)
          }
        }
      }
      await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker))
      if (failures.length > 0) throw failures[0]
    },

    /**
     * Time-driven transitions: silent units and devices go offline, long excursions escalate.
     * Set-based, each in its own transaction, each published after its commit.
     */
    async sweep (): Promise<void> {
      const now = clock.now()
      const offlineCutoff = new Date(now.getTime() - opts.offlineAfterMinutes * 60_000)
      const confirmedBefore = new Date(now.getTime() - opts.confirmMinutes * 60_000)
      await commitThenPublish(() => sweepOfflineUnits(opts.db, now, offlineCutoff))
      await commitThenPublish(() => sweepOfflineDevices(opts.db, offlineCutoff))
      await commitThenPublish(() => sweepEscalations(opts.db, confirmedBefore))
    }
  }
}
export type MonitoringService = ReturnType<typeof createMonitoringService>
