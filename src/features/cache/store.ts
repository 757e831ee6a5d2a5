import { randomBytes } from 'node:crypto'
import { isCluster, type RedisClient } from '../../infra/redis.js'
import type { FailoverFence } from './failover-fence.js'
import type { FailurePolicy } from './failure-policy.js'
import type { CacheMetrics } from './metrics.js'
import { scripts } from './scripts.js'

/** The fence field that covers every entry of a group. */
export const GROUP_WIDE_FIELD = '*'
/** Keys deleted per script call: an invalidation of a large group never blocks Redis for long. */
export const MAX_KEYS_PER_CALL = 500

/** The tokens a load read before it began, to store its result only if they have not moved since. */
export interface Fence { hashKey: string, field: string, tokens: [string, string] }
export type FencedSetResult = 'stored' | 'fenced' | 'error'
/** What an invalidation deleted: each entry that existed, with the milliseconds it had left. */
export type Survivors = Map<string, number>

interface ScriptedRedis {
  cbSetFenced (...args: Array<string | number | Buffer>): Promise<number>
  cbInvalidate (...args: Array<string | number>): Promise<Array<string | number>>
}

/**
 * The fence hash must outlive any load that read its tokens (well under a second) and each invalidation
 * renews it. Ten minutes, or ten entry TTLs, keeps the fences of idle groups from piling up.
 */
export const fenceTtlSeconds = (ttl: number) => Math.max(600, 10 * ttl)

/**
 * A generic Redis cache: values with a TTL, fenced writes and group invalidations, on one connection. It knows
 * nothing of what it stores (the dashboard's read-through in src/features/dashboard/ does). Every call takes
 * the failure policy's path; while the connection is not ready no command is sent at all, so a dead Redis
 * costs nothing per request and logs nothing per request.
 */
export function createCacheStore (opts: {
  redis: RedisClient | null
  /**
   * The connection invalidations and publications go over; `redis` when absent. On a cluster another client,
   * one that follows MOVED and ASK.
   */
  writer?: RedisClient | null
  /**
   * The connection entries are written over; `redis` when absent. On a cluster a client that follows no
   * redirection, so that no write lands on a primary the failover fence did not check.
   */
  filler?: RedisClient | null
  ttlSeconds: number
  metrics: CacheMetrics
  failures: FailurePolicy
  /** Whether an entry's primary may be used now (src/features/cache/failover-fence.ts); always, when absent. */
  failover?: FailoverFence
  /** Sharded pub/sub (SPUBLISH) on a Redis Cluster, so that a message goes to one shard, not to every node. */
  sharded?: boolean
}) {
  const { ttlSeconds, failures, metrics } = opts
  const redis = opts.redis
  const writer = opts.writer ?? redis
  const filler = opts.filler ?? redis
  const failover = opts.failover
  for (const conn of new Set([redis, writer, filler])) {
    conn?.defineCommand(scripts.setFenced.name, { lua: scripts.setFenced.lua })
    conn?.defineCommand(scripts.invalidate.name, { lua: scripts.invalidate.lua })
  }
  const scripted = filler as unknown as ScriptedRedis
  const scriptedWriter = writer as unknown as ScriptedRedis
  const ready = (): boolean => redis !== null && redis.status === 'ready'
  const writerReady = (): boolean => writer !== null && writer.status === 'ready'
  /**
   * Entries under `key` may be used over `via` now: connected, and `key`'s primary as `via` routes it is trusted
   * and not fenced (after a failover). Checked before a command and, for reads, again on its reply.
   */
  const usable = (key: string, via: RedisClient | null = redis): boolean =>
    via !== null && via.status === 'ready' && ready() && (failover === undefined || failover.allows(key, via))

  /** One GET, checked against the failover fence before it is sent and again on its reply. */
  async function getOnce (key: string): Promise<Buffer | null | undefined> {
    if (!usable(key)) return undefined
    const value = await failures.attempt<Buffer | null | undefined>('get', undefined, () => redis!.getBuffer(key))
    // A MOVED on the way (a failover the slot map had not caught yet) moved the map: the answer came from a
    // primary that was not checked, and is dropped.
    return usable(key) ? value : undefined
  }
  /** Reads of one key in flight: who waits for the GET after the one sent. */
  interface KeyReads { waiters: Array<(value: Buffer | null | undefined) => void> | null }
  const reading = new Map<string, KeyReads>()
  async function readRound (key: string, state: KeyReads): Promise<Buffer | null | undefined> {
    let value: Buffer | null | undefined
    try {
      value = await getOnce(key)
    } catch {
      value = undefined
    }
    const waiters = state.waiters
    state.waiters = null
    if (waiters === null) {
      reading.delete(key)
    } else if (value === undefined) {
      // The cache could not answer: those waiting fall back to PostgreSQL now rather than wait for another GET.
      reading.delete(key)
      for (const w of waiters) w(undefined)
    } else {
      void readRound(key, state).then((next) => { for (const w of waiters) w(next) })
    }
    return value
  }

  const store = {
    ttlSeconds,
    metrics,
    failures,
    /** Configured at all (REDIS_DISABLED unset). */
    isEnabled: () => redis !== null,
    /** Connected and ready now. */
    isAvailable: ready,
    /** A failover fence keeps this key's entries unused for now (its primary changed less than a TTL ago). */
    isFenced: (key: string): boolean => ready() && failover !== undefined && !failover.allows(key, redis!),
    /** Called on every (re)connection. */
    onReady (listener: () => void): void { redis?.on('ready', listener) },

    /**
     * The stored bytes: null when absent, undefined when the cache cannot answer. Concurrent reads of one key share
     * GETs, but a read never joins a GET sent before it began (its answer may predate an invalidation that has
     * completed since): it waits for the next one, sent as soon as the one in flight returns. So a read's answer
     * is always from a GET that Redis ran after the read began, and a key read by many requests at once costs about
     * one GET per round trip instead of one per request.
     */
    get (key: string): Promise<Buffer | null | undefined> {
      const inFlight = reading.get(key)
      if (inFlight) return new Promise((resolve) => (inFlight.waiters ??= []).push(resolve))
      const state: KeyReads = { waiters: null }
      reading.set(key, state)
      return readRound(key, state)
    },

    /** SET … EX; false when the cache could not store it. */
    async set (key: string, value: string | Buffer, ttl = ttlSeconds): Promise<boolean> {
      if (!usable(key, filler)) return false
      return failures.attempt('set', false, async () => { await filler!.set(key, value, 'EX', ttl); return true })
    },

    /** SET … NX PX: true for the one caller that takes `key` until it expires; false when taken or unavailable. */
    async claim (key: string, ttlMs: number): Promise<boolean> {
      if (!usable(key, filler)) return false
      return failures.attempt('set', false, async () => (await filler!.set(key, '1', 'PX', ttlMs, 'NX')) === 'OK')
    },

    async delete (key: string): Promise<void> {
      if (!ready()) return
      await failures.attempt('delete', undefined, async () => { await redis!.unlink(key) })
    },

    /** The tokens to read before a load; null when the cache cannot answer (then nothing is stored). */
    async readFence (hashKey: string, field: string): Promise<Fence | null> {
      if (!usable(hashKey)) return null
      const tokens = await failures.attempt<Array<string | null> | null>('fence', null, () => redis!.hmget(hashKey, field, GROUP_WIDE_FIELD))
      return tokens && usable(hashKey) ? { hashKey, field, tokens: [tokens[0] ?? '', tokens[1] ?? ''] } : null
    },

    /** SET … EX ttl, unless an invalidation moved the fence since `readFence`. */
    async setFenced (fence: Fence, key: string, value: string | Buffer, ttl = ttlSeconds): Promise<FencedSetResult> {
      if (!usable(key, filler)) return 'error'
      return failures.attempt<FencedSetResult>('set', 'error', async () => {
        const stored = await scripted.cbSetFenced(2, fence.hashKey, key, fence.field, fence.tokens[0], fence.tokens[1], value, ttl)
        return stored === 1 ? 'stored' : 'fenced'
      })
    },

    /**
     * Moves the fence fields of a group (GROUP_WIDE_FIELD for all of it), then deletes the given keys, at most
     * MAX_KEYS_PER_CALL per script call, then publishes `announce` (in the last script call itself on one server or
     * Sentinel: no extra round trip; SPUBLISH after it on a cluster); returns the entries that existed, with the time
     * they had left. Throws when Redis cannot run it all: the caller must remember the failure.
     */
    async invalidate (hashKey: string, fields: string[], keys: string[], announce?: { channel: string, message: string }): Promise<Survivors> {
      if (!ready() || !writerReady()) {
        failures.report('invalidate', new Error('cache connection not ready'))
        throw new Error('cache unavailable')
      }
      const token = randomBytes(9).toString('base64url')
      const ttl = fenceTtlSeconds(ttlSeconds)
      const survivors: Survivors = new Map()
      // Sharded pub/sub (a cluster) has its channel on a shard of its own: a script cannot reach it.
      const inScript = announce !== undefined && !opts.sharded
      let announced = false
      await failures.required('invalidate', async () => {
        // The fence moves in the first call, before any entry is deleted.
        for (let i = 0; i === 0 || i < keys.length; i += MAX_KEYS_PER_CALL) {
          const batch = keys.slice(i, i + MAX_KEYS_PER_CALL)
          const movedFields = i === 0 ? fields : []
          const last = i + MAX_KEYS_PER_CALL >= keys.length
          const [channel, message] = inScript && last ? [announce.channel, announce.message] : ['', '']
          try {
            const existed = await scriptedWriter.cbInvalidate(1 + batch.length, hashKey, ...batch, token, ttl, channel, message, ...movedFields)
            if (channel !== '') announced = true
            for (let j = 0; j + 1 < existed.length; j += 2) survivors.set(String(existed[j]), Number(existed[j + 1]))
          } catch (err) {
            // A slot half-way through a migration refuses a script whose keys are split between two nodes, or
            // missing on either (TRYAGAIN on one, ASK to the other, until ioredis gives up on redirections). The
            // same steps one key at a time each follow ASK: the fence first, then the entries, so no load that
            // read the fence before can store over them.
            if (!isCluster(writer!) || !/TRYAGAIN|ASK|MOVED|redirections/.test((err as Error).message)) throw err
            if (movedFields.length > 0) {
              await writer!.hset(hashKey, Object.fromEntries(movedFields.map((f) => [f, token])))
              await writer!.expire(hashKey, ttl)
            }
            await Promise.all(batch.map(async (k) => {
              const left = await writer!.pttl(k)
              if (await writer!.unlink(k) === 1 && left > 0) survivors.set(k, left)
            }))
          }
        }
        if (announce && !announced) {
          if (opts.sharded) await writer!.spublish(announce.channel, announce.message)
          else await writer!.publish(announce.channel, announce.message)
        }
      })
      return survivors
    },

    /**
     * Administrative purge by pattern: SCAN with MATCH and COUNT 1000 (on every primary of a cluster), UNLINK in
     * batches, never KEYS. Its cost grows with the whole keyspace; events use `invalidate`. Keys for which `keep`
     * answers true survive (fences).
     */
    async invalidatePattern (pattern: string, keep: (key: string) => boolean = () => false): Promise<number> {
      if (!writerReady()) return 0
      return failures.attempt('invalidate_pattern', 0, async () => {
        const client = writer!
        let deleted = 0
        for (const node of isCluster(client) ? client.nodes('master') : [client]) {
          let cursor = '0'
          do {
            const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
            cursor = next
            const doomed = found.filter((k) => !keep(k))
            for (let i = 0; i < doomed.length; i += MAX_KEYS_PER_CALL) {
              const batch = doomed.slice(i, i + MAX_KEYS_PER_CALL)
              // A multi-key UNLINK must stay in one slot on a cluster: there, one UNLINK per key (auto-pipelined).
              deleted += isCluster(client)
                ? (await Promise.all(batch.map((k) => client.unlink(k)))).reduce((a, b) => a + b, 0)
                : await client.unlink(...batch)
            }
          } while (cursor !== '0')
        }
        return deleted
      })
    },

    async healthCheck (): Promise<{ ok: boolean, latencyMs: number }> {
      const start = performance.now()
      const ok = ready() && await failures.attempt('health', false, async () => (await redis!.ping()) === 'PONG')
      return { ok, latencyMs: Math.round((performance.now() - start) * 100) / 100 }
    }
  }
  return store
}
export type CacheStore = ReturnType<typeof createCacheStore>

let singleton: CacheStore | null = null
/** The process-wide cache (the design's singleton), set by the cache plugin for code outside Fastify's reach. */
export function setCacheStore (s: CacheStore | null): void { singleton = s }
export function getCacheStore (): CacheStore {
  if (!singleton) throw new Error('cache not initialised: register the cache plugin first')
  return singleton
}
