import { randomBytes } from 'node:crypto'
import { isCluster, type RedisClient } from '../../infra/redis.js'
import { clusterSlot } from '../../lib/cluster-slot.js'
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
/**
 * `applied`: the invalidation ran, and as many replicas as required acknowledged it (WAIT). `unreplicated`: it ran
 * on the primary but no replica acknowledged it in time, so a failover could still bring its entries back.
 */
export type InvalidationOutcome = 'applied' | 'unreplicated'

/** Replicas that must acknowledge an invalidation (WAIT), and the longest wait; 0 replicas: no WAIT at all. */
export interface ReplicationWait { replicas: number, timeoutMs: number }
/** After a WAIT that timed out, how long invalidations on that primary skip it (a replay probes again after). */
export const REPLICA_PROBE_MS = 1000

interface ScriptedRedis {
  cbSetFenced (...args: Array<string | number | Buffer>): Promise<number>
  cbInvalidate (...args: Array<string | number>): Promise<number>
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
  /** The connection invalidations run on (the WAIT blocks it); `redis` when absent. */
  writer?: RedisClient | null
  ttlSeconds: number
  metrics: CacheMetrics
  failures: FailurePolicy
  /** Replicas that must hold an invalidation before it counts as done (docs/scaling.md). */
  replication?: ReplicationWait
  /** Sharded pub/sub (SPUBLISH) on a Redis Cluster, so that a message goes to one shard, not to every node. */
  sharded?: boolean
}) {
  const { ttlSeconds, failures, metrics } = opts
  const redis = opts.redis
  const writer = opts.writer ?? redis
  const replication = opts.replication ?? { replicas: 0, timeoutMs: 0 }
  for (const conn of new Set([redis, writer])) {
    conn?.defineCommand(scripts.setFenced.name, { lua: scripts.setFenced.lua })
    conn?.defineCommand(scripts.invalidate.name, { lua: scripts.invalidate.lua })
  }
  const scripted = redis as unknown as ScriptedRedis
  const scriptedWriter = writer as unknown as ScriptedRedis
  const ready = (): boolean => redis !== null && redis.status === 'ready'
  const writerReady = (): boolean => writer !== null && writer.status === 'ready'

  // Per primary: until when invalidations skip the WAIT because the last one timed out (its replica is gone or
  // far behind). Bounds the cost of a missing replica to one WAIT timeout per primary every REPLICA_PROBE_MS.
  const skipWaitUntil = new Map<string, number>()
  const primaryOf = (key: string): string => writer && isCluster(writer) ? (writer.slots[clusterSlot(key)]?.[0] ?? 'unknown') : 'primary'

  /**
   * The invalidation's script calls, then WAIT, in one pipeline on one connection: WAIT counts the replicas that
   * hold every write this connection made, so it must follow the scripts on the very socket they went over (on a
   * cluster, a pipeline goes to the one node that owns the group's slot). EVAL rather than EVALSHA, so that no
   * NOSCRIPT retry can slip out of the pipeline; Redis keeps the compiled script either way.
   */
  async function scriptsThenWait (calls: Array<Array<string | number>>): Promise<number> {
    const p = writer!.pipeline()
    for (const args of calls) p.eval(scripts.invalidate.lua, ...(args as [number, ...Array<string | number>]))
    p.call('WAIT', replication.replicas, replication.timeoutMs)
    const results = await p.exec()
    if (!results) throw new Error('pipeline discarded')
    for (const [err] of results) if (err) throw err
    return Number(results.at(-1)![1])
  }

  const store = {
    ttlSeconds,
    metrics,
    failures,
    /** Configured at all (REDIS_DISABLED unset). */
    isEnabled: () => redis !== null,
    /** Connected and ready now. */
    isAvailable: ready,
    /** Called on every (re)connection. */
    onReady (listener: () => void): void { redis?.on('ready', listener) },

    /** The stored bytes: null when absent, undefined when the cache cannot answer. */
    async get (key: string): Promise<Buffer | null | undefined> {
      if (!ready()) return undefined
      return failures.attempt<Buffer | null | undefined>('get', undefined, () => redis!.getBuffer(key))
    },

    /** SET … EX; false when the cache could not store it. */
    async set (key: string, value: string | Buffer, ttl = ttlSeconds): Promise<boolean> {
      if (!ready()) return false
      return failures.attempt('set', false, async () => { await redis!.set(key, value, 'EX', ttl); return true })
    },

    async delete (key: string): Promise<void> {
      if (!ready()) return
      await failures.attempt('delete', undefined, async () => { await redis!.unlink(key) })
    },

    /** The tokens to read before a load; null when the cache cannot answer (then nothing is stored). */
    async readFence (hashKey: string, field: string): Promise<Fence | null> {
      if (!ready()) return null
      const tokens = await failures.attempt<Array<string | null> | null>('fence', null, () => redis!.hmget(hashKey, field, GROUP_WIDE_FIELD))
      return tokens ? { hashKey, field, tokens: [tokens[0] ?? '', tokens[1] ?? ''] } : null
    },

    /** SET … EX ttl, unless an invalidation moved the fence since `readFence`. */
    async setFenced (fence: Fence, key: string, value: string | Buffer, ttl = ttlSeconds): Promise<FencedSetResult> {
      if (!ready()) return 'error'
      return failures.attempt<FencedSetResult>('set', 'error', async () => {
        const stored = await scripted.cbSetFenced(2, fence.hashKey, key, fence.field, fence.tokens[0], fence.tokens[1], value, ttl)
        return stored === 1 ? 'stored' : 'fenced'
      })
    },

    /**
     * Moves the fence fields of a group (GROUP_WIDE_FIELD for all of it), then deletes the given keys, at most
     * MAX_KEYS_PER_CALL per script call; with `replication`, then waits for that many replicas to hold it.
     * Throws when Redis cannot run it: the caller must remember the failure. `unreplicated` (it ran, no replica
     * acknowledged it in time): the caller must treat the group as not invalidated everywhere yet.
     */
    async invalidate (hashKey: string, fields: string[], keys: string[]): Promise<InvalidationOutcome> {
      if (!ready() || !writerReady()) {
        failures.report('invalidate', new Error('cache connection not ready'))
        throw new Error('cache unavailable')
      }
      const token = randomBytes(9).toString('base64url')
      const ttl = fenceTtlSeconds(ttlSeconds)
      // The fence moves in the first call, before any entry is deleted.
      const calls: Array<Array<string | number>> = []
      for (let i = 0; i === 0 || i < keys.length; i += MAX_KEYS_PER_CALL) {
        const batch = keys.slice(i, i + MAX_KEYS_PER_CALL)
        calls.push([1 + batch.length, hashKey, ...batch, token, ttl, ...(i === 0 ? fields : [])])
      }
      if (replication.replicas === 0) {
        await failures.required('invalidate', async () => { for (const args of calls) await scriptedWriter.cbInvalidate(...args) })
        return 'applied'
      }
      const primary = primaryOf(hashKey)
      if ((skipWaitUntil.get(primary) ?? 0) > Date.now()) {
        await failures.required('invalidate', async () => { for (const args of calls) await scriptedWriter.cbInvalidate(...args) })
        return 'unreplicated'
      }
      const acked = await failures.required('invalidate', () => scriptsThenWait(calls))
      if (acked >= replication.replicas) {
        skipWaitUntil.delete(primary)
        return 'applied'
      }
      skipWaitUntil.set(primary, Date.now() + REPLICA_PROBE_MS)
      failures.report('replicate', new Error(`${acked} of ${replication.replicas} replicas acknowledged within ${replication.timeoutMs} ms`), { primary })
      return 'unreplicated'
    },

    /** PUBLISH (SPUBLISH on a cluster); false when it could not be sent. */
    async publish (channel: string, message: string): Promise<boolean> {
      if (!writerReady()) return false
      return failures.attempt('publish', false, async () => {
        if (opts.sharded) await writer!.spublish(channel, message)
        else await writer!.publish(channel, message)
        return true
      })
    },

    /**
     * Administrative purge by pattern: SCAN with MATCH and COUNT 1000 (on every primary of a cluster), UNLINK in
     * batches, never KEYS. Its cost grows with the whole keyspace; events use `invalidate`. Keys for which `keep`
     * answers true survive (fences).
     */
    async invalidatePattern (pattern: string, keep: (key: string) => boolean = () => false): Promise<number> {
      if (!ready()) return 0
      return failures.attempt('invalidate_pattern', 0, async () => {
        const client = redis!
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
