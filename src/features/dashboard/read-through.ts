import { setTimeout as sleep } from 'node:timers/promises'
import { gzipSync } from 'node:zlib'
import type { FastifyBaseLogger } from 'fastify'
import type { Invalidator } from '../cache/invalidator.js'
import { createLocalCache, type LocalEntry } from '../cache/local.js'
import type { CacheStore, Survivors } from '../cache/store.js'
import type { Publication } from '../changes/pipeline.js'
import { open, otherVersion, seal } from './envelope.js'
import { fenceField, type DashboardKeys } from './keys.js'
import type { BypassReason, DashboardMetrics, RefreshReason } from './metrics.js'
import type { DashboardQueryService } from './queries.js'
import { batchFamily, entriesForEvent, hasOrgEntry, hasUnitEntry, queryTypeNames, queryTypes, type BatchFamily, type Entry, type LoadContext } from './query-types.js'
import type { OrgCounts } from './types.js'

export type CacheOutcome = 'hit' | 'miss' | 'bypass'
/** `body` is JSON text, or gzip-compressed JSON text when `gzip` (a large entry read from Redis). */
export interface ReadResult { body: string | Buffer, gzip: boolean, cache: CacheOutcome }

/**
 * Entries above this size (a unit's 24 h trend: ~20–25 KB of JSON) are stored gzip-compressed: 8–10× less
 * Redis memory, and a client that accepts gzip gets the stored bytes as they are.
 */
export const COMPRESS_ABOVE_BYTES = 2048

interface Flight { promise: Promise<{ json: string | null, fenced: boolean }> }
/**
 * Reloads of one organization's entries of one family (its count panels, or its units' trends) that share one
 * statement: those an event asked for (started in one turn of the event loop), and those reloaded ahead of expiry
 * within AHEAD_BATCH_MS of each other (a page's panels, and the watched entries of the family reloaded with them).
 */
interface Batch {
  family: BatchFamily
  members: Array<{ e: Entry, c: LoadContext, fenceRead: Promise<unknown>, resolve: (json: Promise<string | null>) => void }>
  /** Runs it (once); `immediate`: an event's reload joined, so it runs at the next turn instead of at its timer. */
  start: () => void
  timer: NodeJS.Timeout | null
  immediate: boolean
}
/** A background reload; `again` when an invalidation deleted the entry while it ran (it loads once more). */
interface Reload { promise: Promise<void>, again: boolean }

/** Reloading ahead: an entry read when less than this share of its TTL is left is reloaded in the background. */
export const AHEAD_SHARE = 0.25
/**
 * The compliance figure is recomputed once less than this share of its TTL is left, in the statement of the overview's
 * next reload ahead of expiry (which comes, for a watched overview, before the figure expires: AHEAD_SHARE).
 */
export const COMPLIANCE_AHEAD_SHARE = 0.5
/** Closer than this to its expiry, any read of the figure recomputes it in a statement of its own (the backstop). */
export const COMPLIANCE_BACKSTOP_SHARE = 0.2
/**
 * A reload ahead of expiry waits this long for the other entries of its batch (a dashboard page reads its panels
 * together) so that they share one statement; nobody waits for it, the entry still has AHEAD_SHARE left.
 */
export const AHEAD_BATCH_MS = 20
/** At most this many entries share one statement (an organization watching hundreds of units' trends runs several). */
export const BATCH_MAX_ENTRIES = 50
/** A reload that invalidations keep fencing gives up after this many loads (the next read loads it). */
export const MAX_RELOAD_ATTEMPTS = 5

/** How the read-through keeps watched entries warm (docs/caching.md#refresh). */
export interface RefreshOptions {
  /** Reload what an event deleted before it is emitted, and entries read near their expiry. */
  enabled: boolean
  /** The longest the write path waits for the reloads of an event before it emits anyway. */
  waitMs: number
}

/**
 * The dashboard's cache-aside read-through (docs/caching.md has the reasoning):
 * - a hit is one GET whose bytes go to the client as stored;
 * - a miss loads once per key and instance (single-flight) and stores only through the fence, so a load that
 *   read PostgreSQL before an invalidation never writes its result back;
 * - a request never joins a load that began before an invalidation it could know of: every invalidation, local
 *   or from another instance, detaches the loads of the keys it deleted (of the organization when it was
 *   organization-wide), and a joiner whose load was fenced loads again;
 * - an organization with an invalidation that Redis has not run yet is served from PostgreSQL, and so is one
 *   whose entries sit on a primary that replaced another less than a TTL ago (the failover fence);
 * - watched entries stay warm: an entry an event deleted is reloaded (through the fence, keeping the time it had
 *   left) before the event is emitted, and an entry read in the last quarter of its life is reloaded in the
 *   background (an in-process copy there answers, and Redis is asked once whether another instance reloaded it:
 *   revalidate). "Watched" means read: an entry nobody reads expires when its TTL says, events or not.
 */
export function createReadThrough (opts: {
  store: CacheStore
  invalidator: Invalidator
  keys: DashboardKeys
  queries: DashboardQueryService
  metrics: DashboardMetrics
  log: FastifyBaseLogger
  refresh?: RefreshOptions
  /** The in-process copies in front of Redis (docs/caching.md#in-process); off when absent. */
  local?: { maxBytes: number } | null
}) {
  const { store, invalidator, keys, queries, metrics } = opts
  const log = opts.log.child({ component: 'dashboard-cache' })
  const refresh: RefreshOptions = opts.refresh ?? { enabled: false, waitMs: 0 }
  const ttl = store.ttlSeconds
  const aheadMs = ttl * 1000 * AHEAD_SHARE
  const flights = new Map<string, Flight>()
  /** Reloads nobody waits for, by key: one at a time per key on this instance. */
  const reloads = new Map<string, Reload>()
  const complianceFlights = new Map<string, Promise<number>>()
  /** Batches gathering members, by family and organization. */
  const batches = new Map<string, Batch>()
  const nowSeconds = () => Date.now() / 1000
  const watch = createWatchList(ttl * 1000)
  const local = opts.local ? createLocalCache({ maxBytes: opts.local.maxBytes, listening: invalidator.isListening }) : null
  /** Copies in their reload window whose Redis entry is being read in the background (revalidate). */
  const revalidating = new Set<string>()

  /** Stores a figure computed now (TTL only: it is never fenced, docs/caching.md#compliance). */
  function storeCompliance (orgId: string, value: number): Promise<boolean> {
    return store.set(keys.compliance(orgId), `${value}:${Math.ceil(nowSeconds() + ttl)}`)
  }

  function computeCompliance (orgId: string): Promise<number> {
    let flight = complianceFlights.get(orgId)
    if (!flight) {
      flight = (async () => {
        const value = await timed('stats', () => queries.compliancePercentage(orgId))
        await storeCompliance(orgId, value)
        return value
      })().finally(() => complianceFlights.delete(orgId))
      complianceFlights.set(orgId, flight)
    }
    return flight
  }

  /** Whether this instance recomputes the figure now: the one instance that claims it per half TTL. */
  async function claimCompliance (orgId: string): Promise<boolean> {
    if (complianceFlights.has(orgId)) return false
    if (!await store.claim(keys.complianceClaim(orgId), Math.ceil(ttl * COMPLIANCE_AHEAD_SHARE * 1000))) return false
    metrics.refresh.inc({ query_type: 'stats', reason: 'compliance' })
    return true
  }

  /** Recomputes the figure in a statement of its own, in the background, on the one instance that claims it. */
  function complianceBackstop (orgId: string): void {
    void (async () => {
      if (await claimCompliance(orgId)) await computeCompliance(orgId)
    })().catch((err: Error) => log.warn({ err: err.message, orgId }, 'compliance refresh failed'))
  }

  /** The stored figure (`<percent>:<expiry in epoch seconds>`) and the seconds it has left; null when there is none. */
  async function storedCompliance (orgId: string): Promise<{ value: number, leftSeconds: number } | null> {
    const key = keys.compliance(orgId)
    const raw = await store.get(key)
    if (!raw) return null
    const [n, expiresAt] = raw.length > 0 && raw.length < 32 ? raw.toString().split(':').map(Number) : [NaN]
    if (n! >= 0 && n! <= 100) {
      // (A figure without its expiry, from an older version, counts as due at once.)
      return { value: n!, leftSeconds: (expiresAt ?? 0) - nowSeconds() }
    }
    store.failures.report('corrupt', new Error('not a compliance figure'), { key })
    await store.delete(key)
    return null
  }

  /**
   * The overview's compliance figure for a load on a request path or after an event: the stored one, else computed
   * (once per instance) and stored; near its expiry, recomputed in the background for the next read.
   */
  async function compliance (orgId: string): Promise<number> {
    const figure = await storedCompliance(orgId)
    if (!figure) return computeCompliance(orgId)
    if (refresh.enabled && figure.leftSeconds <= ttl * COMPLIANCE_BACKSTOP_SHARE) complianceBackstop(orgId)
    return figure.value
  }

  /**
   * The figure for an overview reloaded ahead of expiry, in the background: undefined when it is missing, or past
   * half its life and claimed here, so that the overview's own statement computes it (one statement instead of two)
   * and `computed` stores it.
   */
  async function complianceAhead (orgId: string): Promise<number | undefined> {
    const figure = await storedCompliance(orgId)
    if (!figure) return undefined
    if (figure.leftSeconds > ttl * COMPLIANCE_AHEAD_SHARE || !await claimCompliance(orgId)) return figure.value
    return undefined
  }

  const computed = (orgId: string, value: number): void => {
    void storeCompliance(orgId, value).catch((err: Error) => log.warn({ err: err.message, orgId }, 'storing the compliance figure failed'))
  }
  const ctx: LoadContext = { compliance }
  const aheadCtx: LoadContext = { compliance: complianceAhead, computed }

  /** Runs a query type's loader for one entry, counted and timed as a load of that type. */
  async function timed<T> (queryType: Entry['queryType'], fn: () => Promise<T>): Promise<T> {
    metrics.dbLoad.inc({ query_type: queryType })
    const end = metrics.dbLoadSeconds.startTimer({ query_type: queryType })
    try {
      return await fn()
    } finally {
      end()
    }
  }

  async function load (e: Entry, c: LoadContext = ctx): Promise<string | null> {
    const value = await timed<unknown>(e.queryType, () => queryTypes[e.queryType].load(queries, e, c))
    return value === null ? null : JSON.stringify(value)
  }

  /**
   * A background reload of an entry that can share a statement (batchFamily): those of one organization and family
   * asked for together run one statement. For count panels it is the overview's, whose counts are the other panels'
   * figures (the same SQL, one snapshot); for trends, one statement for all the units. Together means: an event's
   * reloads, started in the same turn of the event loop (`urgent`: the emit waits for them), or reloads ahead of
   * expiry within AHEAD_BATCH_MS (a page's panels, and the watched entries reloaded with them: reloadAhead). A member
   * joins as it starts reading its fence; the statement starts once every member's fence has been read, so each fence
   * was read before the data: the fenced store stays exact. A member alone runs its own query.
   */
  function loadShared (e: Entry, c: LoadContext, urgent: boolean, fenceRead: Promise<unknown>): Promise<string | null> {
    const family = batchFamily(e)
    if (family === null) return fenceRead.then(() => load(e, c))
    const batchKey = `${family}:${e.orgId}`
    let batch = batches.get(batchKey)
    if (!batch || batch.members.length >= BATCH_MAX_ENTRIES) {
      batch?.start()
      const b: Batch = batch = { family, members: [], timer: null, immediate: false, start: () => {} }
      let started = false
      b.start = () => {
        if (started) return
        started = true
        if (b.timer) clearTimeout(b.timer)
        if (batches.get(batchKey) === b) batches.delete(batchKey)
        runBatch(e.orgId, b)
      }
      batches.set(batchKey, b)
      if (!urgent) b.timer = setTimeout(b.start, AHEAD_BATCH_MS)
    }
    if (urgent && !batch.immediate) {
      batch.immediate = true
      setImmediate(batch.start)
    }
    const b = batch
    return new Promise<string | null>((resolve) => b.members.push({ e, c, fenceRead, resolve }))
  }

  function runBatch (orgId: string, b: Batch): void {
    const fencesRead = Promise.allSettled(b.members.map((m) => m.fenceRead))
    if (b.members.length === 1) { b.members[0]!.resolve(fencesRead.then(() => load(b.members[0]!.e, b.members[0]!.c))); return }
    if (b.family === 'trends') {
      const unitIds = b.members.map((m) => m.e.unitId!)
      const trends = fencesRead.then(() => timed('temperature_trends', () => queries.temperatureTrendsOf(orgId, unitIds)))
      for (const m of b.members) m.resolve(trends.then((t) => { const v = t.get(m.e.unitId!); return v === undefined ? null : JSON.stringify(v) }))
      return
    }
    const withStats = b.members.find((m) => m.e.queryType === 'stats')
    const counts: Promise<OrgCounts> = fencesRead.then(() => timed('stats', () => withStats ? queryTypes.stats.load(queries, { orgId }, withStats.c) : queries.counts(orgId)))
    for (const m of b.members) {
      const def = queryTypes[m.e.queryType]
      m.resolve(counts.then((c) => JSON.stringify('fromCounts' in def ? def.fromCounts(c) : c)))
    }
  }

  /**
   * Loads the entry and stores it for `ttlSeconds` unless an invalidation moved its fence meanwhile. `background`:
   * a reload nobody waits for, whose count panels may share a statement (loadShared); reloaded ahead of expiry,
   * the overview's statement also recomputes a compliance figure past half its life.
   */
  async function loadAndStore (e: Entry, key: string, ttlSeconds: number, background: RefreshReason | null = null): Promise<{ json: string | null, fenced: boolean }> {
    // The overview's compliance figure is not fenced (TTL only): read at the same time as the fence, one round trip
    // off the load.
    let c = ctx
    if (e.queryType === 'stats') {
      const base = background === 'ahead' ? aheadCtx : ctx
      const early = base.compliance(e.orgId)
      early.catch(() => {}) // (awaited by the loader below; this only keeps a failure from going unhandled meanwhile)
      c = { ...base, compliance: () => early }
    }
    // The data is read after the fence (a shared statement: after every member's).
    const fenceRead = store.readFence(keys.fence(e.orgId), fenceField(e))
    const json = await (background ? loadShared(e, c, background !== 'ahead', fenceRead) : fenceRead.then(() => load(e, c)))
    const fence = await fenceRead
    if (json === null || fence === null) return { json, fenced: false }
    const gzip = json.length > COMPRESS_ABOVE_BYTES
    const body = gzip ? gzipSync(json, { level: 6 }) : json
    const expiresAt = Date.now() + ttlSeconds * 1000
    // What this instance stores becomes its copy, by the rule for a GET's answer: only if no invalidation was heard
    // between the SET's sending and its reply. One that Redis ran before the SET fences it; one it ran after either is
    // heard before the reply (nothing is kept) or drops the copy when it is. A GET sent before the SET, on the same
    // connection, is answered first, so its older answer never replaces this one. Not kept: the old copy goes, and
    // the next read asks Redis.
    const since = local ? local.epoch() : null
    const stored = await store.setFenced(fence, key, seal(body, gzip, expiresAt), ttlSeconds)
    if (stored === 'stored' && local && !local.put(e.orgId, key, { body, gzip, expiresAt }, since)) local.forget(e.orgId, key)
    return { json, fenced: stored === 'fenced' }
  }

  async function singleFlight (e: Entry, key: string, ttlSeconds = ttl): Promise<string | null> {
    const existing = flights.get(key)
    if (existing) {
      const r = await existing.promise
      if (!r.fenced) return r.json
      // Fenced: an invalidation landed during that load, possibly before this request joined it. Load again,
      // together with the other joiners (one new flight, which starts after the invalidation).
      if (flights.get(key) === existing) flights.delete(key)
      return singleFlight(e, key, ttlSeconds)
    }
    const flight: Flight = { promise: loadAndStore(e, key, ttlSeconds) }
    flights.set(key, flight)
    try {
      return (await flight.promise).json
    } finally {
      if (flights.get(key) === flight) flights.delete(key)
    }
  }

  /** Loads in flight of these keys (of the whole organization for null; of everything for a null organization) are no longer joined. */
  function detach (orgId: string | null, deleted: readonly string[] | null): void {
    if (orgId === null) { flights.clear(); return }
    if (deleted !== null) { for (const key of deleted) flights.delete(key); return }
    const marker = `{${orgId}}`
    for (const key of flights.keys()) if (key.includes(marker)) flights.delete(key)
  }
  invalidator.onInvalidated(detach)
  if (local) invalidator.onInvalidated(local.drop)

  /**
   * A reload nobody waits for (a reader arriving meanwhile joins its flight); never rejects. Unlike a reader's
   * load, it loads again when an invalidation fenced it (a burst of events) or deleted what it stored while it was
   * finishing (a reload asked for again while running), at most MAX_RELOAD_ATTEMPTS times, so that the last event
   * of a burst still leaves the entry warm.
   */
  function reload (e: Entry, key: string, reason: RefreshReason, ttlSeconds = ttl): Promise<void> {
    const running = reloads.get(key)
    if (running) {
      running.again = true
      return running.promise
    }
    metrics.refresh.inc({ query_type: e.queryType, reason })
    const r: Reload = { again: false, promise: Promise.resolve() }
    r.promise = (async () => {
      for (let attempt = 0; attempt < MAX_RELOAD_ATTEMPTS; attempt++) {
        r.again = false
        let flight = flights.get(key)
        if (!flight) {
          const mine: Flight = { promise: loadAndStore(e, key, ttlSeconds, reason) }
          flights.set(key, flight = mine)
          void mine.promise.finally(() => { if (flights.get(key) === mine) flights.delete(key) }).catch(() => {})
        }
        if (!(await flight.promise).fenced && !r.again) return
        if (flights.get(key) === flight) flights.delete(key)
      }
    })().catch((err: Error) => log.warn({ err: err.message, key }, 'dashboard refresh failed'))
      .finally(() => reloads.delete(key))
    reloads.set(key, r)
    return r.promise
  }

  /**
   * An entry read in the last quarter of its life is reloaded in the background, and with it the other entries of its
   * family (batchFamily) that readers of this instance watch: they share its statement and expire together from then
   * on, so that an organization's five watched trends cost one statement per TTL instead of five.
   */
  function reloadAhead (e: Entry, key: string): void {
    void reload(e, key, 'ahead')
    const family = batchFamily(e)
    if (family === null) return
    for (const w of watch.family(e.orgId, family)) {
      if (w.key !== key && !flights.has(w.key) && !reloads.has(w.key)) void reload(w.e, w.key, 'ahead')
    }
  }

  /**
   * After an event's invalidation: reloads the entries it deleted (those somebody had read within a TTL) with the
   * time they had left, and waits for them until `waitMs` after the COMMIT. An organization-wide invalidation
   * reloads only the organization-level entries.
   */
  async function refreshAfter (p: Publication, entries: Entry[], survivors: Survivors, committedAt: number): Promise<void> {
    const waits = new Map<string, Promise<void>>()
    const candidates = p.orgWide ? [...entries, ...orgLevelEntries(p.organizationId)] : entries
    for (const e of candidates) {
      const key = keys.entry(e)
      if (waits.has(key)) continue
      const left = survivors.get(key)
      // An entry with under a second left would expire before anyone read it. One this batch did not find may be
      // on its way back from an earlier event of a burst: the emit waits for that reload as well.
      if (left !== undefined && left >= 1000) waits.set(key, reload(e, key, 'event', Math.floor(left / 1000)))
      else if (reloads.has(key)) waits.set(key, reloads.get(key)!.promise)
    }
    // The bound runs from COMMIT, not from here: the invalidation's own time is part of it, so the emit comes at
    // most CACHE_REFRESH_WAIT_MS after the commit (plus the invalidation, when that alone took longer).
    const leftMs = refresh.waitMs - (performance.now() - committedAt)
    if (waits.size === 0 || leftMs <= 0) return
    const ac = new AbortController()
    await Promise.race([Promise.all(waits.values()), sleep(leftMs, undefined, { signal: ac.signal, ref: false }).catch(() => {})])
    ac.abort()
  }

  /**
   * A copy entered its reload window: one GET in the background, for all of this instance's readers, finds out whether
   * Redis holds a newer value (another instance reloaded it ahead: kept here in its place) or the same one, near
   * its expiry (reloaded ahead from here, as a Redis hit would). Meanwhile, and until its expiry, the copy answers.
   * So N instances still reload an entry once per TTL, and a watched entry's hits never leave the process.
   */
  function revalidate (e: Entry, key: string, copy: LocalEntry): void {
    revalidating.add(key)
    const since = local!.epoch()
    void store.get(key).then((raw) => {
      const opened = raw ? open(raw) : null
      if (opened && opened.expiresAt !== copy.expiresAt) {
        local!.put(e.orgId, key, opened, since)
      } else if (!opened && raw !== undefined) {
        // Gone from Redis (expired early, flushed) or unreadable: the next read goes there.
        local!.forget(e.orgId, key)
      }
      if (opened && opened.expiresAt - Date.now() <= aheadMs && !flights.has(key) && !reloads.has(key)) reloadAhead(e, key)
    }).catch(() => {}).finally(() => revalidating.delete(key))
  }

  function bypass (e: Entry, reason: BypassReason): Promise<string | null> {
    metrics.bypass.inc({ query_type: e.queryType, reason })
    return load(e)
  }

  const result = (json: string | null, cache: CacheOutcome): ReadResult | null => json === null ? null : { body: json, gzip: false, cache }

  /**
   * The hit answered by this instance's in-process copy, when the cache may answer at all (the checks `read` makes
   * before anything else, in its order); null when the read must go on to Redis or PostgreSQL. Synchronous.
   */
  function fromCopy (e: Entry, key: string): ReadResult | null {
    if (!local || !store.isAvailable() || invalidator.hasPending(e.orgId) || store.isFenced(key)) return null
    const copy = local.get(e.orgId, key)
    if (!copy) return null
    metrics.hit.inc({ query_type: e.queryType })
    metrics.localHit.inc({ query_type: e.queryType })
    if (refresh.enabled && copy.expiresAt - Date.now() <= aheadMs && !revalidating.has(key) && !flights.has(key) && !reloads.has(key)) revalidate(e, key, copy)
    return { body: copy.body, gzip: copy.gzip, cache: 'hit' }
  }

  return {
    /**
     * `read`'s first step on its own, without a promise: the entry from the in-process copy, or null when `read` is
     * needed (the route's hot path: a hit from the copy costs no await).
     */
    readLocal (e: Entry): ReadResult | null {
      const key = keys.entry(e)
      const hit = fromCopy(e, key)
      if (hit && refresh.enabled) watch.read(e, key)
      return hit
    },

    /** The entry as JSON (or stored gzip bytes); null when it does not exist (a unit not in the organization). */
    async read (e: Entry, o: { refresh?: boolean } = {}): Promise<ReadResult | null> {
      const key = keys.entry(e)
      if (refresh.enabled) watch.read(e, key)
      if (!store.isAvailable()) return result(await bypass(e, store.isEnabled() ? 'unavailable' : 'disabled'), 'bypass')
      if (invalidator.hasPending(e.orgId)) return result(await bypass(e, 'pending_invalidation'), 'bypass')
      // The primary holding the organization's entries changed less than a TTL ago (docs/scaling.md).
      if (store.isFenced(key)) return result(await bypass(e, 'failover'), 'bypass')
      if (o.refresh) {
        // Skips the stored copy but shares a load in flight: any viewer may send no-cache, and a load that an
        // event made stale has been detached or is fenced (and reloaded), so joining it is safe.
        metrics.bypass.inc({ query_type: e.queryType, reason: 'refresh' })
        return result(await singleFlight(e, key), 'bypass')
      }
      const copy = fromCopy(e, key)
      if (copy) return copy
      const since = local ? local.epoch() : null
      const raw = await store.get(key)
      if (raw === undefined) return result(await bypass(e, 'error'), 'bypass')
      if (raw !== null) {
        const opened = open(raw)
        if (opened) {
          metrics.hit.inc({ query_type: e.queryType })
          if (since !== null) local!.put(e.orgId, key, opened, since)
          if (refresh.enabled && opened.expiresAt - Date.now() <= aheadMs && !flights.has(key) && !reloads.has(key)) reloadAhead(e, key)
          return { body: opened.body, gzip: opened.gzip, cache: 'hit' }
        }
        // Another coldboard version's entry is replaced by the load below; anything else is garbage.
        if (!otherVersion(raw)) {
          store.failures.report('corrupt', new Error('not a value coldboard sealed'), { key })
          await store.delete(key)
        }
      }
      // Joining a load in flight is neither a hit nor a load of its own: counted apart.
      if (flights.has(key)) metrics.coalesced.inc({ query_type: e.queryType })
      else metrics.miss.inc({ query_type: e.queryType })
      return result(await singleFlight(e, key), 'miss')
    },

    /**
     * Step 2 of the write path: drops what a committed change made stale (src/features/changes/pipeline.ts), then,
     * with refresh on, reloads what it dropped so that the viewers' refetch after the emit is a hit.
     */
    async invalidate (p: Publication): Promise<void> {
      const committedAt = p.committedAt ?? performance.now()
      const entries = p.events.flatMap(entriesForEvent)
      const survivors = await invalidator.invalidate(p.organizationId, {
        fields: [...new Set(entries.map(fenceField))],
        keys: [...new Set(entries.map(keys.entry))],
        groupWide: p.orgWide
      })
      // Redis has run it: whatever this instance read from Redis meanwhile (a GET sent before the script) is dropped
      // before the refresh and the emit.
      local?.drop(p.organizationId)
      if (refresh.enabled && survivors.size > 0) await refreshAfter(p, entries, survivors, committedAt)
    },

    hasPending: (orgId: string) => invalidator.hasPending(orgId),

    /** Administrative purge of every dashboard entry of every organization (SCAN, never KEYS); fences are kept. */
    purge: (): Promise<number> => store.invalidatePattern(keys.pattern, keys.isFence).finally(() => local?.drop(null)),

    /** What the in-process copies hold now (null when the layer is off). */
    localStats: () => local?.stats() ?? null,

    close (): void {
      flights.clear()
      reloads.clear()
      // Batches waiting for their timer store nothing: their members settle as "no value".
      for (const b of batches.values()) {
        if (b.timer) clearTimeout(b.timer)
        for (const m of b.members) m.resolve(Promise.resolve(null))
      }
      batches.clear()
      watch.close()
      invalidator.close()
    }
  }
}
export type ReadThrough = ReturnType<typeof createReadThrough>

/**
 * The entries this instance's readers watch: those of a batch family (batchFamily) read within the last `windowMs`
 * (a TTL), by organization. Swept every window, so it holds at most what was read in the last two.
 */
function createWatchList (windowMs: number) {
  const byOrg = new Map<string, Map<string, { e: Entry, key: string, family: BatchFamily, at: number }>>()
  const sweep = setInterval(() => {
    const since = Date.now() - windowMs
    for (const [orgId, entries] of byOrg) {
      for (const [key, w] of entries) if (w.at < since) entries.delete(key)
      if (entries.size === 0) byOrg.delete(orgId)
    }
  }, windowMs)
  sweep.unref()
  return {
    /** A read of the entry now (no allocation once it is known: this is on the hit path). */
    read (e: Entry, key: string): void {
      let entries = byOrg.get(e.orgId)
      const w = entries?.get(key)
      if (w) { w.at = Date.now(); return }
      const family = batchFamily(e)
      if (family === null) return
      if (!entries) byOrg.set(e.orgId, entries = new Map())
      entries.set(key, { e: { ...e }, key, family, at: Date.now() })
    },
    /** The organization's entries of the family read within the window. */
    * family (orgId: string, family: BatchFamily): Generator<{ e: Entry, key: string }> {
      const since = Date.now() - windowMs
      for (const w of byOrg.get(orgId)?.values() ?? []) if (w.at >= since && w.family === family) yield w
    },
    close (): void {
      clearInterval(sweep)
      byOrg.clear()
    }
  }
}

/** The organization-level entries of an organization, one per query type that has one. */
export function orgLevelEntries (orgId: string): Entry[] {
  return queryTypeNames.filter(hasOrgEntry).map((queryType) => ({ queryType, orgId }))
}

/** Every key of an organization: its organization-level entries, each unit's entries, and its compliance figure. */
export function organizationKeys (keys: DashboardKeys, orgId: string, unitIds: string[]): string[] {
  const out = [keys.compliance(orgId)]
  for (const queryType of queryTypeNames) {
    if (hasOrgEntry(queryType)) out.push(keys.entry({ queryType, orgId }))
    if (hasUnitEntry(queryType)) for (const unitId of unitIds) out.push(keys.entry({ queryType, orgId, unitId }))
  }
  return out
}
