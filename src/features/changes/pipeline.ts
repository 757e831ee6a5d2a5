import type { FastifyBaseLogger } from 'fastify'
import type { BatchWork, Database, Db, Tx } from '../../infra/postgres.js'
import type { ChangeEvent } from './events.js'

/** What a unit of work changed: its events, and organizations whose dashboard changed in ways no event names. */
export interface Change<T> {
  value: T
  events?: ChangeEvent[]
  /** Organizations to invalidate whole (a unit or device created, a threshold edited…). */
  orgWide?: string[]
}

/** One organization's share of a committed change, as the invalidation step receives it. */
export interface Publication {
  organizationId: string
  events: ChangeEvent[]
  orgWide: boolean
  /** performance.now() at COMMIT: the refresh before the emit waits at most CACHE_REFRESH_WAIT_MS from here. */
  committedAt?: number
}

export interface ChangePipelineOptions {
  db: Db
  /** Transactions whose statements go several to a round trip (Database.batch). */
  batch: Database['batch']
  /** Step 2: drops what the change made stale. Must settle (it remembers its own failures). */
  invalidate: (p: Publication) => Promise<void>
  /** Step 3: tells the clients. */
  emit: (event: ChangeEvent) => void
  /** Seconds from COMMIT to the emit, per organization published (coldboard_change_emit_delay_seconds). */
  observeEmitDelay?: (seconds: number) => void
  log: FastifyBaseLogger
}

/**
 * The write path. Every change (ingestion's evaluation, the sweeper, alert actions, management writes) runs
 * through `commit`: its work in one transaction, then, only once that has committed, the invalidation of what
 * it changed, then — only once the invalidation has completed — the emit. Nothing else emits and nothing else
 * invalidates on a change, so this order holds everywhere (test/integration/write-order.test.ts proves it
 * across instances). Organizations are published concurrently, each in order.
 */
export function createChangePipeline (opts: ChangePipelineOptions) {
  const log = opts.log.child({ component: 'changes' })

  async function publish (change: Omit<Change<unknown>, 'value'>, committedAt: number): Promise<void> {
    const byOrg = new Map<string, Publication>()
    const of = (organizationId: string) => {
      let p = byOrg.get(organizationId)
      if (!p) byOrg.set(organizationId, p = { organizationId, events: [], orgWide: false, committedAt })
      return p
    }
    for (const orgId of change.orgWide ?? []) of(orgId).orgWide = true
    for (const e of change.events ?? []) of(e.payload.organizationId).events.push(e)
    await Promise.all([...byOrg.values()].map(async (p) => {
      try {
        await opts.invalidate(p)
      } catch (err) {
        // The invalidation step keeps its own failures (the organization bypasses the cache until replayed);
        // an unexpected throw is logged and never silences the event.
        log.error({ err, organizationId: p.organizationId }, 'invalidation step failed')
      }
      if (p.events.length > 0) opts.observeEmitDelay?.((performance.now() - committedAt) / 1000)
      for (const e of p.events) {
        try {
          opts.emit(e)
        } catch (err) {
          log.error({ err, event: e.name }, 'emit failed')
        }
      }
    }))
  }

  return {
    /** Runs `work` in one transaction; after COMMIT invalidates what it changed, then emits its events. */
    async commit<T> (work: (tx: Tx) => Promise<Change<T>>): Promise<T> {
      const change = await opts.db.transaction(work)
      await publish(change, performance.now())
      return change.value
    },

    /**
     * The same for work written as batched statements (Database.batch): the change is its value, and the
     * statements it returns beside it go with the COMMIT. For the hot write path (a unit's evaluation).
     */
    async commitBatch<T> (work: BatchWork<Change<T>>): Promise<T> {
      const change = await opts.batch(work)
      await publish(change, performance.now())
      return change.value
    }
  }
}
export type ChangePipeline = ReturnType<typeof createChangePipeline>
