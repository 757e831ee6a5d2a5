import type { FastifyBaseLogger } from 'fastify'
import type { Metrics } from '../../infra/metrics.js'
import type { MonitoringService } from '../monitoring/service.js'
import type { IngestionQueue, ProcessJob } from '../queue/ingestion-queue.js'

/**
 * Where stored readings get evaluated (unit state, alerts, events): on the queue when it takes the job, else
 * right here, so that an accepted reading is always evaluated. Never throws: the readings are durable already,
 * and a failed inline evaluation is caught up by the unit's next batch or job.
 */
export function createEvaluation (opts: {
  queue: IngestionQueue | null
  monitoring: MonitoringService
  metrics: Metrics
  log: FastifyBaseLogger
}) {
  const { queue, monitoring, metrics } = opts
  const log = opts.log.child({ component: 'evaluation' })
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
        log.error({ err, organizationId: job.organizationId }, 'readings stored but not evaluated yet')
      }
      return 'inline'
    }
  }
}
export type Evaluation = ReturnType<typeof createEvaluation>
