import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { isCluster, type RedisClient } from '../../infra/redis.js'
import { GROUP_WIDE_FIELD, type CacheStore, type Survivors } from './store.js'

/** What one invalidation covers in a group: fence fields to move and entries to delete, or the whole group. */
export interface InvalidationTarget { fields: string[], keys: string[], groupWide?: boolean }

/** A remembered (failed) invalidation past this many fields and keys is widened to the whole group: memory stays bounded. */
export const MAX_REMEMBERED_TARGETS = 256
const RETRY_MS = 500

interface Target { fields: Set<string>, keys: Set<string>, groupWide: boolean }
interface Batch extends Target { waiters: Array<(survivors: Survivors) => void>, startedAt: number[] }
interface Remembered extends Target { version: number }

/**
 * `keys`: the entries deleted, or null when the whole group may have changed (a group-wide invalidation, one that
 * named more than MAX_ANNOUNCED_KEYS, or a message from an older version). `group` null: anything may have changed
 * (the subscriber lost messages).
 */
export type InvalidationListener = (group: string | null, keys: readonly string[] | null) => void

/** An announcement names its keys up to this many; past it, it says "the whole group" (the message stays small). */
export const MAX_ANNOUNCED_KEYS = 64

/**
 * Group invalidations over the cache store, with three guarantees (docs/caching.md):
 * - a caller resolves only once a script that started after its call has run, or failed and been remembered;
 *   concurrent calls for one group share one script call (bursts are coalesced), and each learns which
 *   entries that call found and deleted (none when it failed);
 * - a failed invalidation is remembered until Redis runs it, and `hasPending(group)` tells the readers to
 *   bypass the cache meanwhile; what is remembered is bounded per group (widened to the whole group);
 * - listeners hear of every invalidation at once, locally at the call and on other instances through the
 *   channel, so that nobody joins a load that began before it.
 */
export function createInvalidator (opts: {
  store: CacheStore
  /** The channel every instance publishes its invalidations on (behind the deployment's key prefix). */
  channel: string
  /** A separate connection for SUBSCRIBE (SSUBSCRIBE when `sharded`). */
  subscriber: RedisClient | null
  /** Sharded pub/sub (Redis Cluster): the channel lives on one shard; the store publishes with SPUBLISH. */
  sharded?: boolean
  fenceKey: (group: string) => string
  /** Every entry key of a group, for a group-wide invalidation. */
  groupKeys: (group: string) => Promise<string[]>
  log: FastifyBaseLogger
}) {
  const { store } = opts
  const metrics = store.metrics
  const log = opts.log.child({ component: 'cache-invalidator' })
  const instanceId = randomUUID()
  const listeners: InvalidationListener[] = []
  const queued = new Map<string, Batch>()
  const running = new Map<string, Promise<void>>()
  const pending = new Map<string, Remembered>()
  let retryTimer: NodeJS.Timeout | null = null
  let closed = false
  /** Subscribed to the channel now: every invalidation published from now on will be heard. */
  let listening = false

  const notify = (group: string | null, keys: readonly string[] | null) => { for (const l of listeners) l(group, keys) }
  const announced = (t: Target | InvalidationTarget): string[] | null => {
    if (t.groupWide) return null
    const keys = [...t.keys]
    return keys.length <= MAX_ANNOUNCED_KEYS ? keys : null
  }

  function merge (into: Target, t: InvalidationTarget | Target): void {
    if (t.groupWide) into.groupWide = true
    if (into.groupWide) { into.fields.clear(); into.keys.clear(); return }
    for (const f of t.fields) into.fields.add(f)
    for (const k of t.keys) into.keys.add(k)
  }

  async function run (group: string, t: Target): Promise<Survivors> {
    const keys = t.groupWide ? [...new Set([...await opts.groupKeys(group), ...t.keys])] : [...t.keys]
    const fields = t.groupWide ? [GROUP_WIDE_FIELD] : [...t.fields]
    // Other instances detach their loads of these keys and drop their in-process copies of them. The caller
    // emits only once Redis has run the PUBLISH (in the script itself, or right behind it on a cluster), so the
    // message is ahead of the event on every subscriber connection (docs/caching.md#in-process); one that could not
    // be published fails the invalidation, which is remembered and replayed like any other.
    return store.invalidate(opts.fenceKey(group), fields, keys, { channel: opts.channel, message: JSON.stringify({ group, origin: instanceId, keys: announced(t) ?? undefined }) })
  }

  function remember (group: string, t: Target): void {
    const r = pending.get(group) ?? { fields: new Set<string>(), keys: new Set<string>(), groupWide: false, version: 0 }
    merge(r, t)
    if (r.fields.size + r.keys.size > MAX_REMEMBERED_TARGETS) merge(r, { fields: [], keys: [], groupWide: true })
    r.version++
    pending.set(group, r)
    metrics.pendingInvalidations.set(pending.size)
    scheduleRetry()
  }

  function scheduleRetry (): void {
    if (retryTimer || closed) return
    retryTimer = setTimeout(() => { retryTimer = null; void replay() }, RETRY_MS)
    retryTimer.unref()
  }

  /** Runs remembered invalidations; a group uses the cache again only once its own has run. */
  async function replay (): Promise<void> {
    for (const [group, r] of [...pending]) {
      if (!store.isAvailable()) break
      const version = r.version
      try {
        await run(group, r)
        if (pending.get(group)?.version === version) pending.delete(group)
        log.info({ group }, 'replayed a failed invalidation')
      } catch { /* still failing: retried below */ }
    }
    metrics.pendingInvalidations.set(pending.size)
    if (pending.size > 0) scheduleRetry()
  }

  async function runBatch (group: string): Promise<void> {
    const batch = queued.get(group)
    if (!batch) return
    queued.delete(group)
    let survivors: Survivors = new Map()
    try {
      survivors = await run(group, batch)
    } catch (err) {
      remember(group, batch)
      log.warn({ group, err: (err as Error).message }, 'invalidation failed: the group bypasses the cache until it is replayed')
    } finally {
      const now = performance.now()
      for (const t of batch.startedAt) metrics.invalidation.observe((now - t) / 1000)
      for (const w of batch.waiters) w(survivors)
    }
  }

  function drain (group: string): void {
    const p = runBatch(group).finally(() => {
      running.delete(group)
      if (queued.has(group)) drain(group)
    })
    running.set(group, p)
  }

  if (opts.subscriber) {
    const sub = opts.subscriber
    const onMessage = (channel: string, message: string) => {
      if (channel !== opts.channel) return
      try {
        const m = JSON.parse(message) as { group?: unknown, origin?: unknown, keys?: unknown }
        if (m.origin === instanceId || typeof m.group !== 'string') return
        const keys = Array.isArray(m.keys) && m.keys.every((k) => typeof k === 'string') ? m.keys as string[] : null
        notify(m.group, keys)
      } catch { /* not ours */ }
    }
    // Listening once the subscription's reply is in: at start-up, and again after every reconnection (ioredis
    // subscribes again before 'ready'; this SUBSCRIBE is answered after it).
    const subscribe = () => {
      const sent = opts.sharded ? sub.ssubscribe(opts.channel) : sub.subscribe(opts.channel)
      sent.then(() => { listening = !closed && sub.status === 'ready' })
        .catch((err: Error) => log.warn({ err: err.message }, 'subscribing to the invalidation channel failed'))
    }
    sub.on(opts.sharded ? 'smessage' : 'message', onMessage)
    subscribe()
    sub.on('ready', () => { if (!listening) subscribe() })
    // Messages may have been missed while the subscriber was away (on a cluster: while a node was).
    sub.on('close', () => { listening = false; notify(null, null) })
    if (isCluster(sub)) sub.on('-node', () => notify(null, null))
  }

  return {
    instanceId,
    /** Called at once for every invalidation of this instance and, through the channel, of the others. */
    onInvalidated (listener: InvalidationListener): void { listeners.push(listener) },

    /**
     * Invalidates `target` in `group`; resolves once a script that started after this call has run (or failed
     * and been remembered), with the entries of its batch that existed and were deleted. Never rejects.
     */
    invalidate (group: string, target: InvalidationTarget): Promise<Survivors> {
      notify(group, announced(target))
      if (!store.isEnabled()) return Promise.resolve(new Map())
      let batch = queued.get(group)
      if (!batch) {
        batch = { fields: new Set(), keys: new Set(), groupWide: false, waiters: [], startedAt: [] }
        queued.set(group, batch)
      }
      merge(batch, target)
      batch.startedAt.push(performance.now())
      const done = new Promise<Survivors>((resolve) => batch.waiters.push(resolve))
      if (!store.isAvailable()) {
        queued.delete(group)
        store.failures.report('invalidate', new Error('cache connection not ready'))
        remember(group, batch)
        for (const w of batch.waiters) w(new Map())
        return done
      }
      if (!running.has(group)) drain(group)
      return done
    },

    /** The group has an invalidation that Redis has not run yet: its readers must bypass the cache. */
    hasPending: (group: string) => pending.has(group),
    /**
     * Every invalidation published from now on reaches this instance's listeners (subscribed, connected). While
     * false, an in-process copy of an entry may have missed one and must not be used.
     */
    isListening: () => listening,
    pendingCount: () => pending.size,
    /** Replays now (the cache connection came back). */
    replay: () => replay(),

    close (): void {
      closed = true
      listening = false
      if (retryTimer) clearTimeout(retryTimer)
    }
  }
}
export type Invalidator = ReturnType<typeof createInvalidator>
