import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq'
import type { FastifyBaseLogger } from 'fastify'
import type { RedisClient, RedisInfra } from '../../infra/redis.js'

export interface ProcessJob { organizationId: string, unitIds: string[] }

/** A job that can never succeed (it names what does not exist): failed at once, without retries. */
export class UnresolvableJobError extends Error {
  override name = 'UnresolvableJobError'
}

export const INGESTION_QUEUE = 'ingestion'
export const MAINTENANCE_QUEUE = 'maintenance'
const SWEEP_SCHEDULER = 'offline-sweep'
const RECONCILE_SCHEDULER = 'reconcile'
const MAINTAIN_SCHEDULER = 'partitions-retention'
/** Partitions ahead and retention: hourly is plenty (partitions are monthly, retention drops whole months). */
export const MAINTAIN_EVERY_MS = 3600_000
const ENQUEUE_TIMEOUT_MS = 1000
const CLOSE_TIMEOUT_MS = 5000
/**
 * After the evaluation worker's connection comes back from a disconnect (a failover, a Redis restart), how long a
 * job may go on waiting while the worker takes none before the worker is replaced: a BullMQ worker was seen to stay
 * stuck after such a reconnection (taskforcesh/bullmq#3088), and waiting for QUEUE_STALL_SECONDS would make every
 * alert that late. A healthy worker takes a waiting job within milliseconds of its reconnection.
 */
export const RECONNECT_CHECK_MS = 5000

/** True when `p` settled within `ms`. */
async function settlesWithin (p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
  try {
    return await Promise.race([p.then(() => true), timedOut])
  } finally {
    clearTimeout(timer)
  }
}

/** Attempts of an evaluation job (exponential backoff from 500 ms: about 7.5 s in all); the reconciler covers the rest. */
export const EVALUATION_ATTEMPTS = 5

/** Jobs of the evaluation queue by state, and how long the oldest waiting one has waited. */
export interface QueueStats { waiting: number, active: number, delayed: number, failed: number, oldestWaitingSeconds: number }

export interface MaintenanceHandlers {
  process: (job: ProcessJob) => Promise<void>
  sweep: () => Promise<void>
  reconcile: () => Promise<void>
  /** Partitions ahead and retention (src/features/maintenance), hourly. */
  maintain?: () => Promise<unknown>
}

/**
 * BullMQ on the shared Redis (D1), behind the deployment's queue prefix. Readings are already durable in
 * PostgreSQL when a job is added; the job carries the state evaluation (unit state, alerts, events) off the
 * request path. `enqueue` answers false instead of waiting when Redis is not ready, so the caller evaluates inline.
 */
export function createIngestionQueue (opts: {
  redis: RedisInfra
  prefix: string
  log: FastifyBaseLogger
  sweepEverySeconds: number
  reconcileEverySeconds: number
}) {
  const log = opts.log.child({ component: 'queue' })
  /** Names this process as the holder of the local-upkeep lease (for an operator reading the key). */
  const instance = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
  const producerConnection = opts.redis.connection('queue')
  const queue = new Queue<ProcessJob>(INGESTION_QUEUE, {
    connection: producerConnection,
    prefix: opts.prefix,
    skipWaitingForReady: true,
    defaultJobOptions: {
      attempts: EVALUATION_ATTEMPTS,
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
  let startedHandlers: MaintenanceHandlers | null = null
  /** When this process's evaluation worker last took a job (or was started): how a stuck worker is told from an idle one. */
  let lastTakenAt = 0

  /** The workers' own connections (BullMQ does not close a connection it was given). */
  const workerConnections: RedisClient[] = []
  const replacedListeners: Array<() => void> = []

  /**
   * RECONNECT_CHECK_MS after the evaluation worker's connection came back: if a job waited all that time while the
   * worker took none, the worker is stuck on its new connection and is replaced.
   */
  async function checkAfterReconnect (connection: RedisClient, reconnectedAt: number): Promise<void> {
    // Still this process's worker, and it has taken nothing since (checked again after the count's round trip).
    const idleSince = () => !closed && workerConnections.includes(connection) && lastTakenAt < reconnectedAt
    if (!idleSince()) return
    const stats = await ingestion.stats()
    if (stats === null || stats.waiting === 0 || stats.oldestWaitingSeconds * 1000 < RECONNECT_CHECK_MS || !idleSince()) return
    log.warn({ waiting: stats.waiting, oldestWaitingSeconds: stats.oldestWaitingSeconds }, 'the queue worker took no job since its connection came back while jobs wait: replacing it')
    await replaceWorkers()
  }

  async function replaceWorkers (): Promise<boolean> {
    if (closed || !startedHandlers) return false
    await closeWorkers()
    for (const c of workerConnections.splice(0)) opts.redis.release(c)
    if (closed) return false
    createWorkers(startedHandlers)
    for (const listener of replacedListeners) listener()
    return true
  }

  function createWorkers (handlers: MaintenanceHandlers): void {
    const connection = opts.redis.connection('worker')
    const upkeepConnection = opts.redis.connection('worker')
    workerConnections.push(connection, upkeepConnection)
    const worker = new Worker<ProcessJob>(INGESTION_QUEUE, async (job: Job<ProcessJob>) => {
      try {
        await handlers.process(job.data)
      } catch (err) {
        if (err instanceof UnresolvableJobError) throw new UnrecoverableError(err.message)
        throw err
      }
    }, {
      connection, prefix: opts.prefix, concurrency: 4
    })
    lastTakenAt = Date.now()
    worker.on('active', () => { lastTakenAt = Date.now() })
    let dropped = false
    connection.on('close', () => { dropped = true })
    connection.on('ready', () => {
      if (!dropped || closed) return
      dropped = false
      const reconnectedAt = Date.now()
      setTimeout(() => {
        checkAfterReconnect(connection, reconnectedAt).catch((err: Error) => log.warn({ err: err.message }, 'worker check after a reconnection failed'))
      }, RECONNECT_CHECK_MS).unref()
    })
    const upkeep = new Worker(MAINTENANCE_QUEUE, async (job: Job) => {
      if (job.name === 'reconcile') await handlers.reconcile()
      else if (job.name === 'maintain') await handlers.maintain?.()
      else await handlers.sweep()
    }, { connection: upkeepConnection, prefix: opts.prefix, concurrency: 1 })
    for (const w of [worker, upkeep]) {
      w.on('error', (err) => log.debug({ err: err.message }, 'worker error'))
      w.on('failed', (job, err) => {
        const final = err.name === 'UnrecoverableError' || (job !== undefined && job.attemptsMade >= (job.opts.attempts ?? 1))
        // A job out of attempts is left in the failed set; its readings are found again by the reconciler.
        if (final) log.error({ jobId: job?.id, queue: w.name, err: err.message }, 'job failed for good')
        else log.warn({ jobId: job?.id, queue: w.name, err: err.message }, 'job failed, will retry')
      })
      workers.push(w)
    }
  }

  /** Closes the workers, waiting for their jobs within bounds, then without waiting. */
  async function closeWorkers (): Promise<void> {
    const closing = workers.splice(0)
    if (!await settlesWithin(Promise.allSettled(closing.map((w) => w.close())), CLOSE_TIMEOUT_MS)) {
      log.warn('workers did not close in time; closing them without waiting for their jobs')
      await settlesWithin(Promise.allSettled(closing.map((w) => w.close(true))), CLOSE_TIMEOUT_MS)
    }
  }

  const ingestion = {
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
     * Starts the evaluation worker and the maintenance worker, whose repeatable jobs (the offline sweep, the
     * reconciliation of readings left unevaluated, partitions and retention when `maintain` is given) are shared by
     * all workers: each runs once per period.
     */
    async startWorkers (handlers: MaintenanceHandlers): Promise<void> {
      startedHandlers = handlers
      createWorkers(handlers)
      const schedule = async () => {
        try {
          await maintenance.upsertJobScheduler(SWEEP_SCHEDULER, { every: opts.sweepEverySeconds * 1000 }, {
            name: 'sweep', opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } }
          })
          await maintenance.upsertJobScheduler(RECONCILE_SCHEDULER, { every: opts.reconcileEverySeconds * 1000 }, {
            name: 'reconcile', opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } }
          })
          if (handlers.maintain) {
            await maintenance.upsertJobScheduler(MAINTAIN_SCHEDULER, { every: MAINTAIN_EVERY_MS }, {
              name: 'maintain', opts: { removeOnComplete: { count: 24 }, removeOnFail: { count: 100 } }
            })
          }
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'could not schedule the maintenance jobs yet; retried when Redis is back')
        }
      }
      // Idempotent: re-asserted on every reconnection, so a Redis that restarted empty gets them back.
      producerConnection.on('ready', () => { if (!closed) void schedule() })
      if (producerConnection.status === 'ready') await schedule()
    },

    /** The evaluation queue's depth, failures and the age of its oldest waiting job; null when Redis cannot answer. */
    async stats (now = Date.now()): Promise<QueueStats | null> {
      if (producerConnection.status !== 'ready') return null
      try {
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed')
        const [oldest] = await queue.getJobs(['wait'], 0, 0, true)
        return {
          waiting: counts.waiting ?? 0,
          active: counts.active ?? 0,
          delayed: counts.delayed ?? 0,
          failed: counts.failed ?? 0,
          oldestWaitingSeconds: oldest ? Math.max(0, Math.round((now - oldest.timestamp) / 1000)) : 0
        }
      } catch {
        return null
      }
    },

    /**
     * The deployment's lease on the local upkeep of a stalled queue (src/features/evaluation/service.ts): true for
     * the one process that takes it until it lapses (nine tenths of a sweep interval, so the next tick may take
     * it again), false when another process holds it. True when Redis cannot answer: the upkeep is never skipped
     * for want of a lease, only shared out while Redis can count the holders.
     */
    async claimLocalUpkeep (): Promise<boolean> {
      if (producerConnection.status !== 'ready') return true
      try {
        const ttlMs = Math.max(100, Math.floor(opts.sweepEverySeconds * 900))
        return await producerConnection.set(`${opts.prefix}:${INGESTION_QUEUE}:coldboard-local-upkeep`, instance, 'PX', ttlMs, 'NX') === 'OK'
      } catch {
        return true
      }
    },

    /** This process's running workers (evaluation, then maintenance), for diagnostics and tests. */
    workers: (): readonly Worker[] => [...workers],

    /** How long this process's evaluation worker has gone without taking a job; null when it runs no workers. */
    workerIdleMs: (now = Date.now()): number | null => startedHandlers && workers.length > 0 ? now - lastTakenAt : null,

    /**
     * Replaces this process's workers with new ones on new connections. For a worker that stopped taking jobs
     * while its connection looks ready (seen after a Redis Cluster outage: jobs waited over a minute): the
     * watchdog calls it when jobs wait past QUEUE_STALL_SECONDS and this worker took none meanwhile. A job the
     * old worker still held is retried by BullMQ's stalled-job check; evaluation is idempotent.
     */
    restartWorkers: replaceWorkers,

    /** Called each time this process's workers were replaced: by the watchdog or after a reconnection. */
    onWorkersReplaced (listener: () => void): void {
      replacedListeners.push(listener)
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

    /**
     * Lets running jobs finish, within bounds: after a cluster failover a BullMQ close was seen never to settle
     * (workers waiting on a node that is gone), which must not hold the app's close; the Redis plugin's close
     * drops the connections right after.
     */
    async close (): Promise<void> {
      if (closed) return
      closed = true
      await closeWorkers()
      if (!await settlesWithin(Promise.allSettled([queue.close(), maintenance.close()]), CLOSE_TIMEOUT_MS)) log.warn('queues did not close in time')
    }
  }
  return ingestion
}
export type IngestionQueue = ReturnType<typeof createIngestionQueue>
