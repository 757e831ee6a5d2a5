import { Queue, Worker, type Job } from 'bullmq'
import type { FastifyBaseLogger } from 'fastify'
import type { RedisInfra } from '../../infra/redis.js'

export interface ProcessJob { organizationId: string, unitIds: string[] }

export const INGESTION_QUEUE = 'ingestion'
export const MAINTENANCE_QUEUE = 'maintenance'
const SWEEP_SCHEDULER = 'offline-sweep'
const MAINTAIN_SCHEDULER = 'partitions-retention'
/** Partitions ahead and retention: hourly is plenty (partitions are monthly, retention drops whole months). */
export const MAINTAIN_EVERY_MS = 3600_000
const ENQUEUE_TIMEOUT_MS = 1000

/**
 * BullMQ on the shared Redis (D1). Readings are already durable in PostgreSQL when a job is added;
 * the job carries the state evaluation (unit state, alerts, events) off the request path. `enqueue`
 * answers false instead of waiting when Redis is not ready, so the caller evaluates inline.
 */
export function createIngestionQueue (opts: {
  redis: RedisInfra
  prefix: string
  log: FastifyBaseLogger
  sweepEverySeconds: number
}) {
  const log = opts.log.child({ component: 'queue' })
  const producerConnection = opts.redis.connection('queue')
  const queue = new Queue<ProcessJob>(INGESTION_QUEUE, {
    connection: producerConnection,
    prefix: opts.prefix,
    skipWaitingForReady: true,
    defaultJobOptions: {
      attempts: 5,
      backoff: { type: 'exponential', delay: 500 },
      removeOnComplete: { count: 1000 },
      removeOnFail: { count: 5000 }
    }
  })
  const maintenance = new Queue(MAINTENANCE_QUEUE, { connection: producerConnection, prefix: opts.prefix, skipWaitingForReady: true })
  queue.on('error', (err) => log.debug({ err: err.message }, 'queue error'))
  maintenance.on('error', (err) => log.debug({ err: err.message }, 'maintenance queue error'))
  const workers: Worker[] = []
  let closed = false

  return {
    queue,
    ready: () => producerConnection.status === 'ready',

    /** Adds an evaluation job; false (never a throw) when the queue cannot take it right now. */
    async enqueue (job: ProcessJob): Promise<boolean> {
      if (closed || producerConnection.status !== 'ready') return false
      let timer: NodeJS.Timeout | undefined
      try {
        await Promise.race([
          queue.add('process', job),
          new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('enqueue timed out')), ENQUEUE_TIMEOUT_MS) })
        ])
        return true
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'enqueue failed, evaluating inline')
        return false
      } finally {
        clearTimeout(timer)
      }
    },

    /**
     * Starts the evaluation worker, the offline sweeper and, when given, database maintenance (repeatable jobs
     * shared by all workers).
     */
    async startWorkers (handlers: { process: (job: ProcessJob) => Promise<void>, sweep: () => Promise<void>, maintain?: () => Promise<unknown> }): Promise<void> {
      const connection = opts.redis.connection('worker')
      const worker = new Worker<ProcessJob>(INGESTION_QUEUE, async (job: Job<ProcessJob>) => handlers.process(job.data), {
        connection, prefix: opts.prefix, concurrency: 4
      })
      const sweeper = new Worker(MAINTENANCE_QUEUE, async (job: Job) => {
        if (job.name === 'maintain') await handlers.maintain?.()
        else await handlers.sweep()
      }, { connection: opts.redis.connection('worker'), prefix: opts.prefix, concurrency: 1 })
      for (const w of [worker, sweeper]) {
        w.on('error', (err) => log.debug({ err: err.message }, 'worker error'))
        w.on('failed', (job, err) => log.warn({ jobId: job?.id, err: err.message }, 'job failed'))
        workers.push(w)
      }
      const schedule = async () => {
        try {
          await maintenance.upsertJobScheduler(SWEEP_SCHEDULER, { every: opts.sweepEverySeconds * 1000 }, {
            name: 'sweep', opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } }
          })
          if (handlers.maintain) {
            await maintenance.upsertJobScheduler(MAINTAIN_SCHEDULER, { every: MAINTAIN_EVERY_MS }, {
              name: 'maintain', opts: { removeOnComplete: { count: 24 }, removeOnFail: { count: 100 } }
            })
          }
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'could not schedule the offline sweep yet; retried when Redis is back')
        }
      }
      // Idempotent: re-asserted on every reconnection, so a Redis that restarted empty gets it back.
      producerConnection.on('ready', () => { if (!closed) void schedule() })
      if (producerConnection.status === 'ready') await schedule()
    },

    async healthCheck (): Promise<{ ok: boolean, latencyMs: number }> {
      const start = performance.now()
      let ok = false
      if (producerConnection.status === 'ready') {
        try {
          await queue.getJobCounts('waiting')
          ok = true
        } catch { ok = false }
      }
      return { ok, latencyMs: Math.round((performance.now() - start) * 100) / 100 }
    },

    async close (): Promise<void> {
      if (closed) return
      closed = true
      await Promise.allSettled(workers.map((w) => w.close()))
      await Promise.allSettled([queue.close(), maintenance.close()])
    }
  }
}
export type IngestionQueue = ReturnType<typeof createIngestionQueue>
