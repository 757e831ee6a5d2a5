import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { Metrics } from '../../infra/metrics.js'
import { ORG_WIDE_FIELD, complianceKey, dashboardKey, generationKey, scopeField, unitIndexKey, type Entry } from './keys.js'

// Store only if neither the entry's fence token nor the organization-wide one moved since the load began
// (issue 4 §1): a load that straddles an invalidation can never write back what it read before the change.
const SET_FENCED = `
local cur = redis.call('HMGET', KEYS[1], ARGV[1], '*')
if (cur[1] or '') ~= ARGV[2] or (cur[2] or '') ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
if #KEYS == 3 then
  redis.call('SADD', KEYS[3], KEYS[2])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
return 1`

// New fence tokens for the scopes an event changes, then the exact keys deleted: O(keys of the scope),
// independent of the keyspace (issue 4 §3). Organization-wide: the '*' token and the per-unit key index.
const INVALIDATE = `
for i = 4, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], ARGV[1]) end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], '*', ARGV[1])
  local members = redis.call('SMEMBERS', KEYS[2])
  for i = 1, #members, 500 do redis.call('UNLINK', unpack(members, i, math.min(i + 499, #members))) end
  redis.call('DEL', KEYS[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if #KEYS > 2 then redis.call('UNLINK', unpack(KEYS, 3)) end
return #KEYS - 2`

interface ScriptedRedis extends Redis {
  cbSetFenced (...args: Array<string | number | Buffer>): Promise<number>
  cbInvalidate (...args: Array<string | number>): Promise<number>
}

export interface Fence { field: string, tokens: [string, string] }
export type FencedSetResult = 'stored' | 'fenced' | 'error'

/**
 * The generation hash must outlive any load that read its tokens (a load takes well under a second),
 * and each invalidation renews it. Ten minutes, or ten entry TTLs, keeps the fences of idle
 * organizations from piling up in Redis (~110 bytes per unit scope).
 */
const generationTtlSeconds = (ttl: number) => Math.max(600, 10 * ttl)

/**
 * The cache over one ioredis connection (D6), JSON values (D7), a TTL on every key (D5). Every failure
 * takes the same path, `guard`: logged (throttled), counted in dashboard_cache_error_total, and turned
 * into a fallback value, so callers fall back to PostgreSQL and nothing throws (D9). While the
 * connection is not ready no command is sent at all: a dead Redis costs nothing and logs nothing per request.
 */
export function createCacheService (opts: {
  redis: Redis | null
  ttlSeconds: number
  metrics: Metrics
  log: FastifyBaseLogger
}) {
  const { metrics, ttlSeconds } = opts
  const log = opts.log.child({ component: 'cache' })
  const redis = opts.redis as ScriptedRedis | null
  if (redis) {
    redis.defineCommand('cbSetFenced', { lua: SET_FENCED })
    redis.defineCommand('cbInvalidate', { lua: INVALIDATE })
  }
  const lastLogged = new Map<string, number>()

  function available (): boolean {
    return redis !== null && redis.status === 'ready'
  }

  async function guard<T> (operation: string, fallback: T, fn: (r: ScriptedRedis) => Promise<T>): Promise<T> {
    if (!redis || redis.status !== 'ready') return fallback
    const end = metrics.cacheLatency.startTimer({ operation })
    try {
      return await fn(redis)
    } catch (err) {
      metrics.cacheError.inc({ operation })
      const now = Date.now()
      if ((lastLogged.get(operation) ?? 0) + 10_000 < now) {
        lastLogged.set(operation, now)
        log.warn({ operation, err: (err as Error).message }, 'cache operation failed, using PostgreSQL')
      }
      return fallback
    } finally {
      end()
    }
  }

  const service = {
    ttlSeconds,
    /** Configured at all (REDIS_DISABLED unset). */
    isEnabled: () => redis !== null,
    /** Connected and ready now. */
    isAvailable: available,

    async get<T> (key: string): Promise<T | null> {
      const raw = await service.getRaw(key)
      if (typeof raw !== 'string') return null
      try {
        return JSON.parse(raw) as T
      } catch {
        await service.reportCorrupt(key)
        return null
      }
    },

    async set<T> (key: string, value: T, ttl = ttlSeconds): Promise<void> {
      await guard('set', undefined, async (r) => { await r.set(key, JSON.stringify(value), 'EX', ttl) })
    },

    async delete (key: string): Promise<void> {
      await guard('delete', undefined, async (r) => { await r.unlink(key) })
    },

    /** The stored JSON text, untouched: null when absent, undefined when the cache cannot answer. */
    async getRaw (key: string): Promise<string | null | undefined> {
      return guard<string | null | undefined>('get', undefined, (r) => r.get(key))
    },

    /** The stored bytes, untouched (large entries are stored gzip-compressed, see dashboard-cache.ts). */
    async getRawBuffer (key: string): Promise<Buffer | null | undefined> {
      return guard<Buffer | null | undefined>('get', undefined, (r) => r.getBuffer(key))
    },

    async reportCorrupt (key: string): Promise<void> {
      metrics.cacheError.inc({ operation: 'corrupt' })
      log.warn({ key }, 'corrupted cache value, treated as a miss')
      await service.delete(key)
    },

    /** The fence tokens to capture before loading an entry; null when the cache cannot answer. */
    async readFence (e: Entry): Promise<Fence | null> {
      const field = scopeField(e)
      const tokens = await guard<Array<string | null> | null>('fence', null, (r) => r.hmget(generationKey(e.orgId), field, ORG_WIDE_FIELD))
      return tokens ? { field, tokens: [tokens[0] ?? '', tokens[1] ?? ''] } : null
    },

    /** SET … EX ttl unless an invalidation moved the fence since `readFence`. */
    async setFenced (e: Entry, json: string | Buffer, fence: Fence): Promise<FencedSetResult> {
      const keys = [generationKey(e.orgId), dashboardKey(e)]
      if (e.unitId) keys.push(unitIndexKey(e.orgId))
      return guard<FencedSetResult>('set', 'error', async (r) => {
        const stored = await r.cbSetFenced(keys.length, ...keys, fence.field, fence.tokens[0], fence.tokens[1], json, ttlSeconds)
        return stored === 1 ? 'stored' : 'fenced'
      })
    },

    /**
     * Invalidates the given entries of one organization (or all of it) in one script. Throws when Redis
     * cannot run it, because the caller must remember the failure (see dashboard-cache.ts).
     */
    async invalidateEntries (orgId: string, entries: Entry[], orgWide = false): Promise<void> {
      if (!redis || redis.status !== 'ready') throw new Error('cache unavailable')
      const token = randomBytes(9).toString('base64url')
      const keys = [generationKey(orgId), unitIndexKey(orgId), ...new Set(entries.map(dashboardKey))]
      if (orgWide) keys.push(complianceKey(orgId))
      const fields = [...new Set(entries.map(scopeField))]
      const end = metrics.cacheLatency.startTimer({ operation: 'invalidate' })
      try {
        await redis.cbInvalidate(keys.length, ...keys, token, generationTtlSeconds(ttlSeconds), orgWide ? '1' : '0', ...fields)
      } catch (err) {
        metrics.cacheError.inc({ operation: 'invalidate' })
        throw err
      } finally {
        end()
      }
    },

    /**
     * Administrative purge by pattern: SCAN with MATCH and COUNT 1000, UNLINK in batches, never KEYS (D13).
     * Cost grows with the whole keyspace; events use invalidateEntries instead. Generation hashes are kept,
     * so purging never resets a fence.
     */
    async invalidatePattern (pattern: string): Promise<number> {
      if (!pattern.startsWith('dashboard:')) throw new Error('invalidatePattern only purges dashboard: keys')
      return guard('invalidate_pattern', 0, async (r) => {
        let cursor = '0'
        let deleted = 0
        do {
          const [next, keys] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
          cursor = next
          const doomed = keys.filter((k) => !k.startsWith('dashboard:gen:'))
          for (let i = 0; i < doomed.length; i += 500) deleted += await r.unlink(...doomed.slice(i, i + 500))
        } while (cursor !== '0')
        return deleted
      })
    },

    async healthCheck (): Promise<{ ok: boolean, latencyMs: number }> {
      const start = performance.now()
      const ok = await guard('health', false, async (r) => (await r.ping()) === 'PONG')
      return { ok, latencyMs: Math.round((performance.now() - start) * 100) / 100 }
    }
  }
  return service
}
export type CacheService = ReturnType<typeof createCacheService>

let singleton: CacheService | null = null
/** D8: the process-wide instance, set by the cache plugin. */
export function setCacheService (s: CacheService | null): void { singleton = s }
export function getCacheService (): CacheService {
  if (!singleton) throw new Error('CacheService not initialised: register the cache plugin first')
  return singleton
}
