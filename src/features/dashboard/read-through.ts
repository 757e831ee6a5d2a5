import { gzipSync } from 'node:zlib'
import type { FastifyBaseLogger } from 'fastify'
import type { Invalidator } from '../cache/invalidator.js'
import type { CacheStore } from '../cache/store.js'
import type { Publication } from '../changes/pipeline.js'
import { open, seal } from './envelope.js'
import { fenceField, type DashboardKeys } from './keys.js'
import type { BypassReason, DashboardMetrics } from './metrics.js'
import type { DashboardQueryService } from './queries.js'
import { entriesForEvent, hasOrgEntry, hasUnitEntry, queryTypeNames, queryTypes, type Entry } from './query-types.js'

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
 * The dashboard's cache-aside read-through (docs/caching.md has the reasoning):
 * - a hit is one GET whose bytes go to the client as stored;
 * - a miss loads once per key and instance (single-flight) and stores only through the fence, so a load that
 *   read PostgreSQL before an invalidation never writes its result back;
 * - a request never joins a load that began before an invalidation it could know of: every invalidation, local
 *   or from another instance, detaches the organization's loads, and a joiner whose load was fenced loads again;
 * - an organization with an invalidation that Redis has not run yet is served from PostgreSQL, and so is one
 *   whose entries sit on a primary that replaced another less than a TTL ago (the failover fence).
 */
export function createReadThrough (opts: {
  store: CacheStore
  invalidator: Invalidator
  keys: DashboardKeys
  queries: DashboardQueryService
  metrics: DashboardMetrics
  log: FastifyBaseLogger
}) {
  const { store, invalidator, keys, queries, metrics } = opts
  const flights = new Map<string, Flight>()
  const complianceFlights = new Map<string, Promise<number>>()

  /** The overview's compliance figure: from its own TTL-only entry, else computed (once per instance) and stored. */
  async function compliance (orgId: string): Promise<number> {
    const key = keys.compliance(orgId)
    const raw = await store.get(key)
    if (raw) {
      const n = raw.length > 0 && raw.length < 16 ? Number(raw.toString()) : NaN
      if (n >= 0 && n <= 100) return n
      store.failures.report('corrupt', new Error('not a number'), { key })
      await store.delete(key)
    }
    let flight = complianceFlights.get(orgId)
    if (!flight) {
      flight = (async () => {
        const end = metrics.dbLoadSeconds.startTimer({ query_type: 'stats' })
        metrics.dbLoad.inc({ query_type: 'stats' })
        try {
          const value = await queries.compliancePercentage(orgId)
          await store.set(key, String(value))
          return value
        } finally {
          end()
        }
      })().finally(() => complianceFlights.delete(orgId))
      complianceFlights.set(orgId, flight)
    }
    return flight
  }
  const ctx = { compliance }

  async function load (e: Entry): Promise<string | null> {
    metrics.dbLoad.inc({ query_type: e.queryType })
    const end = metrics.dbLoadSeconds.startTimer({ query_type: e.queryType })
    try {
      const value = await queryTypes[e.queryType].load(queries, e, ctx)
      return value === null ? null : JSON.stringify(value)
    } finally {
      end()
    }
  }

  async function loadAndStore (e: Entry, key: string): Promise<{ json: string | null, fenced: boolean }> {
    const fence = await store.readFence(keys.fence(e.orgId), fenceField(e))
    const json = await load(e)
    if (json === null || fence === null) return { json, fenced: false }
    const gzip = json.length > COMPRESS_ABOVE_BYTES
    const value = seal(gzip ? gzipSync(json, { level: 6 }) : json, gzip)
    return { json, fenced: (await store.setFenced(fence, key, value)) === 'fenced' }
  }

  async function singleFlight (e: Entry, key: string): Promise<string | null> {
    const existing = flights.get(key)
    if (existing) {
      const r = await existing.promise
      if (!r.fenced) return r.json
      // Fenced: an invalidation landed during that load, possibly before this request joined it. Load again,
      // together with the other joiners (one new flight, which starts after the invalidation).
      if (flights.get(key) === existing) flights.delete(key)
      return singleFlight(e, key)
    }
    const flight: Flight = { promise: loadAndStore(e, key) }
    flights.set(key, flight)
    try {
      return (await flight.promise).json
    } finally {
      if (flights.get(key) === flight) flights.delete(key)
    }
  }

  /** Loads in flight for the organization (all of them for null) are no longer joined. */
  function detach (orgId: string | null): void {
    if (orgId === null) { flights.clear(); return }
    const marker = `{${orgId}}`
    for (const key of flights.keys()) if (key.includes(marker)) flights.delete(key)
  }
  invalidator.onInvalidated(detach)

  function bypass (e: Entry, reason: BypassReason): Promise<string | null> {
    metrics.bypass.inc({ query_type: e.queryType, reason })
    return load(e)
  }

  const result = (json: string | null, cache: CacheOutcome): ReadResult | null => json === null ? null : { body: json, gzip: false, cache }

  return {
    /** The entry as JSON (or stored gzip bytes); null when it does not exist (a unit not in the organization). */
    async read (e: Entry, o: { refresh?: boolean } = {}): Promise<ReadResult | null> {
      const key = keys.entry(e)
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
      const raw = await store.get(key)
      if (raw === undefined) return result(await bypass(e, 'error'), 'bypass')
      if (raw !== null) {
        const opened = open(raw)
        if (opened) {
          metrics.hit.inc({ query_type: e.queryType })
          return { body: opened.body, gzip: opened.gzip, cache: 'hit' }
        }
        store.failures.report('corrupt', new Error('not a value coldboard sealed'), { key })
        await store.delete(key)
      }
      metrics.miss.inc({ query_type: e.queryType })
      return result(await singleFlight(e, key), 'miss')
    },

    /** Step 2 of the write path: drops what a committed change made stale (src/features/changes/pipeline.ts). */
    invalidate (p: Publication): Promise<void> {
      const entries = p.events.flatMap(entriesForEvent)
      return invalidator.invalidate(p.organizationId, {
        fields: [...new Set(entries.map(fenceField))],
        keys: [...new Set(entries.map(keys.entry))],
        groupWide: p.orgWide
      })
    },

    hasPending: (orgId: string) => invalidator.hasPending(orgId),

    /** Administrative purge of every dashboard entry of every organization (SCAN, never KEYS); fences are kept. */
    purge: (): Promise<number> => store.invalidatePattern(keys.pattern, keys.isFence),

    close (): void {
      flights.clear()
      invalidator.close()
    }
  }
}
export type ReadThrough = ReturnType<typeof createReadThrough>

/** Every key of an organization: its organization-level entries, each unit's entries, and its compliance figure. */
export function organizationKeys (keys: DashboardKeys, orgId: string, unitIds: string[]): string[] {
  const out = [keys.compliance(orgId)]
  for (const queryType of queryTypeNames) {
    if (hasOrgEntry(queryType)) out.push(keys.entry({ queryType, orgId }))
    if (hasUnitEntry(queryType)) for (const unitId of unitIds) out.push(keys.entry({ queryType, orgId, unitId }))
  }
  return out
}
