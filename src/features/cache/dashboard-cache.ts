import { randomUUID } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { Metrics } from '../../infra/metrics.js'
import type { DashboardQueryService } from '../dashboard/queries.js'
import type { ChangeEvent } from '../events/types.js'
import type { CacheService } from './cache-service.js'
import { complianceKey, dashboardKey, entriesForEvent, orgLevelEntries, type Entry } from './keys.js'

export const INVALIDATION_CHANNEL = 'cache:invalidate'

export type CacheOutcome = 'hit' | 'miss' | 'bypass'
/** `body` is JSON text, or gzip-compressed JSON text when `gzip` (a large entry read from Redis). */
export interface ReadResult { body: string | Buffer, gzip: boolean, cache: CacheOutcome }

/**
 * Entries above this size (a unit's 24 h trend: ~20–25 KB of JSON) are stored gzip-compressed: 8–10×
 * less Redis memory, and a client that accepts gzip gets the stored bytes as they are.
 */
export const COMPRESS_ABOVE_BYTES = 2048
const isGzip = (b: Buffer) => b.length > 2 && b[0] === 0x1f && b[1] === 0x8b

interface Flight { promise: Promise<{ json: string | null, fenced: boolean }> }
interface PendingInvalidation { entries: Entry[], orgWide: boolean }
interface Batch extends PendingInvalidation { waiters: Array<() => void>, startedAt: number[] }

/**
 * Cache-aside for the dashboard (D2) with the guarantees of SPEC §5 (docs/caching.md has the proofs):
 * - a hit is one GET whose JSON text goes to the client as stored;
 * - a miss loads once per key and instance (single-flight) and stores only through the fence, so a load
 *   that read PostgreSQL before an invalidation never writes its result back;
 * - a request never joins a load that began before an invalidation it could know of: local and
 *   `cache:invalidate` invalidations detach the organization's loads, and a joiner whose load was fenced
 *   loads again;
 * - an invalidation that Redis could not run is remembered, the organization is served from PostgreSQL
 *   until it has been replayed, and bursts for one organization are coalesced into one script call.
 */
export function createDashboardCache (opts: {
  cache: CacheService
  queries: DashboardQueryService
  metrics: Metrics
  log: FastifyBaseLogger
  /** Connection for PUBLISH (the cache's own). */
  publisher: Redis | null
  /** Separate connection for SUBSCRIBE (HYP-001). */
  subscriber: Redis | null
}) {
  const { cache, queries, metrics } = opts
  const log = opts.log.child({ component: 'dashboard-cache' })
  const instanceId = randomUUID()
  const flights = new Map<string, Flight>()
  const pending = new Map<string, PendingInvalidation>()
  const running = new Map<string, Promise<void>>()
  const queued = new Map<string, Batch>()
  let retryTimer: NodeJS.Timeout | null = null
  let closed = false

  const complianceFlights = new Map<string, Promise<number>>()

  /** The overview's compliance figure: from its own TTL-only entry, else computed (once per instance) and stored. */
  async function compliance (orgId: string): Promise<number> {
    const key = complianceKey(orgId)
    const raw = cache.isAvailable() ? await cache.getRaw(key) : undefined
    if (typeof raw === 'string' && Number.isFinite(Number(raw))) return Number(raw)
    let flight = complianceFlights.get(orgId)
    if (!flight) {
      flight = (async () => {
        metrics.dbLoad.inc({ query_type: 'stats' })
        const end = metrics.dbLoadSeconds.startTimer({ query_type: 'stats' })
        try {
          const value = await queries.compliancePercentage(orgId)
          if (cache.isAvailable()) await cache.set(key, value)
          return value
        } finally {
          end()
        }
      })().finally(() => complianceFlights.delete(orgId))
      complianceFlights.set(orgId, flight)
    }
    return flight
  }

  async function load (e: Entry): Promise<string | null> {
    metrics.dbLoad.inc({ query_type: e.queryType })
    const end = metrics.dbLoadSeconds.startTimer({ query_type: e.queryType })
    try {
      const value = e.queryType === 'stats'
        ? await queries.stats(e.orgId, { compliancePercentage: await compliance(e.orgId) })
        : await runQuery(queries, e)
      return value === null ? null : JSON.stringify(value)
    } finally {
      end()
    }
  }

  async function loadAndStore (e: Entry): Promise<{ json: string | null, fenced: boolean }> {
    const fence = await cache.readFence(e)
    const json = await load(e)
    if (json === null || fence === null) return { json, fenced: false }
    const stored = json.length > COMPRESS_ABOVE_BYTES ? gzipSync(json, { level: 6 }) : json
    return { json, fenced: (await cache.setFenced(e, stored, fence)) === 'fenced' }
  }

  async function singleFlight (e: Entry, key: string): Promise<string | null> {
    const existing = flights.get(key)
    if (existing) {
      const r = await existing.promise
      if (!r.fenced) return r.json
      // Fenced: an invalidation landed during that load, possibly before this request joined it. Load
      // again, together with the other joiners (one new flight, which starts after the invalidation).
      if (flights.get(key) === existing) flights.delete(key)
      return singleFlight(e, key)
    }
    const flight: Flight = { promise: loadAndStore(e) }
    flights.set(key, flight)
    try {
      return (await flight.promise).json
    } finally {
      if (flights.get(key) === flight) flights.delete(key)
    }
  }

  function detachOrg (orgId: string): void {
    const marker = `:org:${orgId.toLowerCase()}`
    for (const key of flights.keys()) if (key.includes(marker)) flights.delete(key)
  }

  function bypass (e: Entry, reason: string): Promise<string | null> {
    metrics.cacheBypass.inc({ query_type: e.queryType, reason })
    return load(e)
  }

  /** Returns null when the entry does not exist (a unit not in the organization). */
  async function read (e: Entry, o: { refresh?: boolean } = {}): Promise<ReadResult | null> {
    const key = dashboardKey(e)
    const wrap = (json: string | null, outcome: CacheOutcome): ReadResult | null => json === null ? null : { body: json, gzip: false, cache: outcome }
    if (!cache.isAvailable()) return wrap(await bypass(e, cache.isEnabled() ? 'unavailable' : 'disabled'), 'bypass')
    if (pending.has(e.orgId)) return wrap(await bypass(e, 'pending_invalidation'), 'bypass')
    if (o.refresh) {
      // Skips the stored copy but shares a load in flight: any viewer may send no-cache, and a load that
      // an event made stale has been detached or is fenced (and reloaded), so joining it is safe.
      metrics.cacheBypass.inc({ query_type: e.queryType, reason: 'refresh' })
      return wrap(await singleFlight(e, key), 'bypass')
    }
    const raw = await cache.getRawBuffer(key)
    if (raw === undefined) return wrap(await bypass(e, 'error'), 'bypass')
    if (raw !== null) {
      const gzip = isGzip(raw)
      if (gzip || looksLikeJsonObject(raw)) {
        metrics.cacheHit.inc({ query_type: e.queryType })
        return { body: raw, gzip, cache: 'hit' }
      }
      await cache.reportCorrupt(key)
    }
    metrics.cacheMiss.inc({ query_type: e.queryType })
    return wrap(await singleFlight(e, key), 'miss')
  }

  async function runBatch (orgId: string): Promise<void> {
    const batch = queued.get(orgId)
    if (!batch) return
    queued.delete(orgId)
    try {
      await cache.invalidateEntries(orgId, batch.entries, batch.orgWide)
      await publish(orgId)
    } catch (err) {
      remember(orgId, batch)
      log.warn({ organizationId: orgId, err: (err as Error).message }, 'invalidation failed: organization bypasses the cache until it is replayed')
    } finally {
      const now = performance.now()
      for (const t of batch.startedAt) metrics.invalidation.observe((now - t) / 1000)
      for (const w of batch.waiters) w()
    }
  }

  function remember (orgId: string, batch: PendingInvalidation): void {
    const prev = pending.get(orgId)
    pending.set(orgId, { entries: [...(prev?.entries ?? []), ...batch.entries], orgWide: (prev?.orgWide ?? false) || batch.orgWide })
    scheduleRetry()
  }

  function scheduleRetry (): void {
    if (retryTimer || closed) return
    retryTimer = setTimeout(() => { retryTimer = null; void replayPending() }, 500)
    retryTimer.unref()
  }

  /** Applies remembered invalidations; an organization uses the cache again only once its own is applied. */
  async function replayPending (): Promise<void> {
    for (const [orgId, p] of [...pending]) {
      if (!cache.isAvailable()) break
      try {
        await cache.invalidateEntries(orgId, p.entries, p.orgWide)
        if (pending.get(orgId) === p) pending.delete(orgId)
        await publish(orgId)
        log.info({ organizationId: orgId }, 'replayed a failed invalidation')
      } catch { /* still failing: retried below */ }
    }
    if (pending.size > 0) scheduleRetry()
  }

  async function publish (orgId: string): Promise<void> {
    if (!opts.publisher) return
    try {
      await opts.publisher.publish(INVALIDATION_CHANNEL, JSON.stringify({ organizationId: orgId, origin: instanceId }))
    } catch (err) {
      // Other instances rely on the Redis-side fence; the message only spares them a wasted wait.
      log.debug({ err: (err as Error).message }, 'invalidation publish failed')
    }
  }

  /**
   * Invalidates entries of one organization; resolves once a script that started after this call has
   * run (or failed and been remembered). Concurrent calls for one organization share one script call.
   */
  function invalidate (orgId: string, entries: Entry[], orgWide = false): Promise<void> {
    detachOrg(orgId)
    if (!cache.isEnabled()) return Promise.resolve()
    let batch = queued.get(orgId)
    if (!batch) {
      batch = { entries: [], orgWide: false, waiters: [], startedAt: [] }
      queued.set(orgId, batch)
    }
    batch.entries.push(...entries)
    batch.orgWide ||= orgWide
    batch.startedAt.push(performance.now())
    const done = new Promise<void>((resolve) => batch.waiters.push(resolve))
    if (!cache.isAvailable()) {
      queued.delete(orgId)
      remember(orgId, batch)
      for (const w of batch.waiters) w()
      metrics.cacheError.inc({ operation: 'invalidate' })
      return done
    }
    if (!running.has(orgId)) drain(orgId)
    return done
  }

  function drain (orgId: string): void {
    const p = runBatch(orgId).finally(() => {
      running.delete(orgId)
      if (queued.has(orgId)) drain(orgId)
    })
    running.set(orgId, p)
  }

  if (opts.subscriber) {
    const sub = opts.subscriber
    sub.subscribe(INVALIDATION_CHANNEL).catch((err: Error) => log.warn({ err: err.message }, 'subscribe failed'))
    sub.on('message', (_channel: string, message: string) => {
      try {
        const m = JSON.parse(message) as { organizationId?: string, origin?: string }
        if (m.origin !== instanceId && typeof m.organizationId === 'string') detachOrg(m.organizationId)
      } catch { /* not ours */ }
    })
    // Messages may have been missed while the subscriber was away: drop every in-flight load.
    sub.on('close', () => flights.clear())
  }
  opts.publisher?.on('ready', () => { if (pending.size > 0) void replayPending() })

  return {
    instanceId,
    read,
    invalidate,
    /** The before-emit hook: invalidates what the events change (D3). */
    async onEvents (orgId: string, events: ChangeEvent[]): Promise<void> {
      await invalidate(orgId, events.flatMap(entriesForEvent))
    },
    /** Everything of one organization: organization-level entries and every per-unit key it has. */
    invalidateOrg (orgId: string): Promise<void> {
      return invalidate(orgId, orgLevelEntries(orgId), true)
    },
    hasPending: (orgId: string) => pending.has(orgId),
    close (): void {
      closed = true
      if (retryTimer) clearTimeout(retryTimer)
      flights.clear()
    }
  }
}
export type DashboardCache = ReturnType<typeof createDashboardCache>

function runQuery (q: DashboardQueryService, e: Entry): Promise<unknown> {
  switch (e.queryType) {
    case 'units_status': return q.unitsStatus(e.orgId)
    case 'alerts_count': return q.alertsCount(e.orgId, e.unitId)
    case 'devices_online': return q.devicesOnline(e.orgId)
    case 'temperature_trends': return q.temperatureTrends(e.orgId, e.unitId!)
    case 'stats': return q.stats(e.orgId)
  }
}

/** Every payload is a JSON object: a cheap structural check that catches garbage without re-parsing. */
function looksLikeJsonObject (b: Buffer): boolean {
  return b.length >= 2 && b[0] === 123 && b[b.length - 1] === 125
}
