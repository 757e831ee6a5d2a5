import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { Registry } from 'prom-client'
import type { Redis } from 'ioredis'
import type { RedisTarget } from '../../src/config.js'
import { createRedisInfra } from '../../src/infra/redis.js'
import { connectCacheStore } from '../../src/features/cache/connect.js'
import { createCacheMetrics } from '../../src/features/cache/metrics.js'
import { GROUP_WIDE_FIELD, type CacheStore } from '../../src/features/cache/store.js'
import { createDashboardKeys, fenceField, type DashboardKeys } from '../../src/features/dashboard/keys.js'
import type { Entry } from '../../src/features/dashboard/query-types.js'
import { organizationKeys } from '../../src/features/dashboard/read-through.js'
import { waitFor } from '../../src/lib/net.js'

/** The default REDIS_KEY_PREFIX, as a deployment runs it. */
export const BENCH_PREFIX = 'coldboard:'

export interface BenchCache {
  store: CacheStore
  keys: DashboardKeys
  /** What the read-through runs for these entries (or, orgWide, for the whole organization of `unitIds`). */
  invalidateEntries (orgId: string, entries: Entry[], orgWide?: { unitIds: string[] }): Promise<unknown>
  close (): Promise<void>
}

/** The cache store on connections configured exactly like the app's, for a Redis URL or any target (a cluster). */
export async function benchCache (target: string | RedisTarget, ttlSeconds = 60): Promise<BenchCache> {
  const log = pino({ level: 'silent' })
  const infra = createRedisInfra({ target: typeof target === 'string' ? { url: target } : target, commandTimeoutMs: 250, log })
  const { store, connection, writer, filler } = connectCacheStore({ redis: infra, ttlSeconds, metrics: createCacheMetrics(new Registry()), log })
  await waitFor(() => [connection, writer, filler].every((c) => c!.status === 'ready'), 10_000, 'cache connections')
  const keys = createDashboardKeys(BENCH_PREFIX)
  return {
    store,
    keys,
    invalidateEntries: (orgId, entries, orgWide) => orgWide
      ? store.invalidate(keys.fence(orgId), [GROUP_WIDE_FIELD], organizationKeys(keys, orgId, orgWide.unitIds))
      : store.invalidate(keys.fence(orgId), [...new Set(entries.map(fenceField))], [...new Set(entries.map(keys.entry))]),
    close: () => infra.close()
  }
}

/**
 * One organization's cached dashboard: `units` units, a trend cached for the first `trends` of them and a unit
 * alert count for the first `unitAlerts`, plus the four organization-level entries.
 */
export function orgFixture (opts: { units: number, trends: number, unitAlerts: number }) {
  const orgId = randomUUID()
  const unitIds = Array.from({ length: opts.units }, () => randomUUID())
  const orgLevel: Entry[] = (['units_status', 'alerts_count', 'devices_online', 'stats'] as const).map((queryType) => ({ queryType, orgId }))
  const perUnit: Entry[] = [
    ...unitIds.slice(0, opts.trends).map((unitId): Entry => ({ queryType: 'temperature_trends', orgId, unitId })),
    ...unitIds.slice(0, opts.unitAlerts).map((unitId): Entry => ({ queryType: 'alerts_count', orgId, unitId }))
  ]
  return { orgId, unitIds, orgLevel, perUnit, all: [...orgLevel, ...perUnit] }
}

// Payloads of realistic size, so that memory figures mean something: a trend is 288 five-minute points.
const trendJson = JSON.stringify({
  unitId: '00000000-0000-4000-8000-000000000000',
  points: Array.from({ length: 288 }, (_, i) => ({ timestamp: new Date(Date.UTC(2025, 0, 1) + i * 300_000).toISOString(), temperature: 4.37, alarmState: 'normal' }))
})
const statsJson = JSON.stringify({
  organizationId: '00000000-0000-4000-8000-000000000000',
  unitCounts: { total: 1000, normal: 960, too_hot: 20, too_cold: 10, offline: 10 },
  alertCounts: { unresolved: 30, acknowledged: 5, critical: 12 },
  deviceCounts: { total: 1000, online: 990, offline: 10 },
  compliancePercentage: 97.3,
  siteCount: 20,
  worstState: 'offline',
  lastUpdated: '2025-01-01T00:00:00.000Z'
})
export function payload (e: Entry): string {
  switch (e.queryType) {
    case 'temperature_trends': return trendJson
    case 'stats': return statsJson
    case 'units_status': return '{"total":1000,"normal":960,"too_hot":20,"too_cold":10,"offline":10}'
    case 'devices_online': return '{"total":1000,"online":990,"offline":10}'
    case 'alerts_count': return '{"unresolved":30,"acknowledged":5,"critical":12}'
  }
}

/** The cache-aside re-read of each entry as the app does it on a miss: capture the fence, then a fenced SET. */
export async function populate (cache: BenchCache, entries: Entry[]): Promise<void> {
  // In slices: the cache connection gives up on a reply after 250 ms, and 1,000 trends are 21 MB to send.
  for (let from = 0; from < entries.length; from += 100) {
    const slice = entries.slice(from, from + 100)
    const fences = await Promise.all(slice.map((e) => cache.store.readFence(cache.keys.fence(e.orgId), fenceField(e))))
    const results = await Promise.all(slice.map((e, i) => {
      const fence = fences[i]
      if (!fence) throw new Error('cache unavailable while populating')
      return cache.store.setFenced(fence, cache.keys.entry(e), payload(e))
    }))
    const refused = results.filter((r) => r !== 'stored')
    if (refused.length > 0) throw new Error(`${refused.length} fenced sets were not stored (${[...new Set(refused)].join(', ')})`)
  }
}

// Server-side fill: half BullMQ-like job hashes, half other tenants' dashboard keys (50 per tenant, with a
// TTL long enough not to expire during the run). Other tenants' ids never match the measured organization.
const FILL = `
local from, count, ttl, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
for i = from, from + count - 1 do
  if i % 2 == 0 then
    redis.call('HSET', prefix .. 'bull:ingestion:' .. i, 'name', 'process', 'data', '{"organizationId":"x","unitIds":["y"]}', 'timestamp', '1735689600000')
  else
    local t = math.floor(i / 100)
    local org = string.format('{%08x-0000-4000-8000-%012x}', t, t)
    local k = math.floor((i % 100) / 2)
    local key
    if k < 4 then key = prefix .. 'dashboard:' .. ({'stats', 'units:status', 'alerts:count', 'devices:online'})[k + 1] .. ':org:' .. org
    else key = string.format('%sdashboard:temperature:trends:org:%s:unit:%08x-0000-4000-8000-%012x', prefix, org, i, i) end
    redis.call('SET', key, '{"points":[]}', 'EX', ttl)
  end
end
return count`

/** Adds `n` unrelated keys in server-side batches of 50,000. */
export async function fillUnrelated (client: Redis, n: number): Promise<void> {
  for (let from = 0; from < n; from += 50_000) {
    await client.eval(FILL, 0, from, Math.min(50_000, n - from), 6 * 3600, BENCH_PREFIX)
  }
}
