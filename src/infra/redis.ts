import fp from 'fastify-plugin'
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { RedisTarget } from '../config.js'

declare module 'fastify' {
  interface FastifyInstance { redis: RedisInfra | null }
}

/**
 * What each connection is for. On a cluster the cache uses three: `cache` reads entries (auto-pipelined there),
 * `cache-fill` writes them and follows no redirection (the failover fence checks the primary a write goes to
 * before it is sent: src/features/cache/failover-fence.ts), `cache-write` carries the invalidations and follows
 * MOVED and ASK. On one server, `cache` does all three.
 */
export type RedisPurpose = 'cache' | 'cache-fill' | 'cache-write' | 'cache-sub' | 'io-pub' | 'io-sub' | 'queue' | 'worker'
/** A connection as the cache, the queue and the real-time layer use it: one server (standalone or Sentinel) or a cluster. */
export type RedisClient = Redis | Cluster
export type RedisMode = 'standalone' | 'sentinel' | 'cluster'

export const isCluster = (c: RedisClient): c is Cluster => (c as { isCluster?: boolean }).isCluster === true

/** How often a cluster client re-reads the slot map: a failover or a migration is noticed within it. */
const SLOTS_REFRESH_MS = 1000

/**
 * One place that knows how coldboard talks to Redis (D1, D6): one server (REDIS_URL), a Redis Cluster
 * (REDIS_CLUSTER_NODES) or a primary found through Sentinel (REDIS_SENTINELS), each connection made for its
 * purpose. The cache connections never queue a command while disconnected and give up on a slow reply after
 * REDIS_COMMAND_TIMEOUT_MS, so a dead, failing-over or slow Redis costs a request at most that long (D9); on a
 * cluster they do not retry a command on a node that went away either (the slot map is re-read every second
 * instead). Every connection reconnects in the background.
 */
export function createRedisInfra (opts: { target: RedisTarget, commandTimeoutMs: number, log: { warn: (o: object, m: string) => void } }) {
  const { target } = opts
  const mode: RedisMode = 'cluster' in target ? 'cluster' : 'sentinels' in target ? 'sentinel' : 'standalone'
  const connections: RedisClient[] = []
  const base: RedisOptions = {
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), 2000),
    lazyConnect: false,
    ...(target.password ? { password: target.password } : {})
  }
  const failFast: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: opts.commandTimeoutMs }
  const byPurpose: Record<RedisPurpose, RedisOptions> = {
    // Fail fast: no offline queue, one bounded attempt per command. Not auto-pipelined on one server: concurrent
    // reads of a key already share one GET (src/features/cache/store.ts), and the batch's setImmediate made each
    // GET wait for the rest of the event-loop turn: p99 5–8 ms instead of 2–3 ms at the same throughput under
    // autocannon (bench/report/breakdown.ts steps). A cluster client is auto-pipelined (below).
    cache: failFast,
    'cache-fill': failFast,
    'cache-write': failFast,
    'cache-sub': { enableOfflineQueue: true, maxRetriesPerRequest: null },
    'io-pub': failFast,
    'io-sub': { enableOfflineQueue: true, maxRetriesPerRequest: null },
    // BullMQ producer: BullMQ sends its start-up commands before 'ready', so they may queue; ingestion
    // itself only enqueues while the connection is ready, under a timeout, and falls back to inline work.
    queue: { enableOfflineQueue: true, maxRetriesPerRequest: 1, commandTimeout: Math.max(opts.commandTimeoutMs, 1000) },
    // BullMQ worker: blocking commands, BullMQ requires maxRetriesPerRequest: null.
    worker: { enableOfflineQueue: true, maxRetriesPerRequest: null }
  }
  let closed = false
  const logged = new WeakSet<Error>()

  function create (purpose: RedisPurpose): RedisClient {
    const { enableOfflineQueue, enableAutoPipelining, retryStrategy, ...nodeOptions } = { ...base, ...byPurpose[purpose], connectionName: `coldboard:${purpose}` }
    if ('cluster' in target) {
      const subscriber = purpose === 'cache-sub' || purpose === 'io-sub'
      const fast = enableOfflineQueue === false
      const options: ClusterOptions = {
        enableOfflineQueue,
        // The cluster client's per-command routing costs more than the batch's wait: cache reads auto-pipelined
        // measured 0.88–0.97 × one Redis's hit throughput, 0.73–0.79 × without (docs/scaling.md).
        enableAutoPipelining: purpose === 'cache' ? true : enableAutoPipelining,
        clusterRetryStrategy: (attempt) => retryStrategy!(attempt) ?? 2000,
        slotsRefreshInterval: SLOTS_REFRESH_MS,
        // A command for a node that went away fails at once (the read falls back to PostgreSQL) instead of being
        // retried for up to maxRedirections × 100 ms; MOVED and ASK are still followed at once. No ready check: it
        // is a command like any other, and without an offline queue it fails while the nodes of the slot map are
        // still connecting (always so when the configured nodes are not the addresses the cluster announces).
        ...(fast ? { retryDelayOnFailover: 0, retryDelayOnClusterDown: 0, retryDelayOnTryAgain: 20, maxRedirections: 6, enableReadyCheck: false } : {}),
        // Entries are written only on the primary the slot map names, which the failover fence checked just
        // before: no MOVED, ASK or retry may carry a write elsewhere (it fails; nothing is stored). Reads may follow
        // redirections (and are checked again on their reply): ioredis 5.11 throws an uncaught TypeError when an
        // auto-pipelined batch all answered ASK and may not follow it (seen in test/integration/cluster.test.ts).
        ...(purpose === 'cache-fill' ? { maxRedirections: 0 } : {}),
        // SSUBSCRIBE goes to the shard that owns the channel's slot, and follows it through failovers.
        ...(subscriber ? { shardedSubscribers: true } : {}),
        redisOptions: nodeOptions
      }
      return new Cluster(target.cluster, options)
    }
    const own: RedisOptions = { ...nodeOptions, enableOfflineQueue, enableAutoPipelining, retryStrategy }
    if ('sentinels' in target) {
      // The primary is asked of the sentinels on every (re)connection, and ioredis checks its role; the failover
      // detector drops the connection as soon as the sentinels announce a new primary.
      return new Redis({ ...own, sentinels: target.sentinels, name: target.name, failoverDetector: true })
    }
    return new Redis(target.url, own)
  }

  function connection (purpose: RedisPurpose): RedisClient {
    const conn = create(purpose)
    // ioredis emits 'error' on every failed reconnect; one warning per distinct failure is enough.
    let lastCode = ''
    conn.on('error', (err: Error & { code?: string }) => {
      const code = err.code ?? err.message
      if (code !== lastCode && !logged.has(err)) opts.log.warn({ purpose, err: err.message }, 'redis connection error')
      lastCode = code
      logged.add(err)
    })
    conn.on('ready', () => { lastCode = '' })
    connections.push(conn)
    return conn
  }

  let shared: RedisClient | null = null
  return {
    mode,
    /** Sharded pub/sub (SPUBLISH/SSUBSCRIBE) on a cluster: a message goes to one shard, not to every node. */
    sharded: mode === 'cluster',
    connection,
    /**
     * The subscriber connection Socket.io's adapter and the cache's invalidation channel share on one server
     * (standalone or Sentinel): the messages of one connection arrive in the order Redis ran their PUBLISHes, so an
     * invalidation published before an event is handled before that event reaches this instance's sockets, which
     * the in-process cache relies on (docs/caching.md#in-process). On a cluster (sharded pub/sub, one connection
     * per shard) no such order exists: each caller gets a connection of its own.
     */
    subscriber (purpose: 'io-sub' | 'cache-sub'): RedisClient {
      if (mode === 'cluster') return connection(purpose)
      return (shared ??= connection('io-sub'))
    },
    /** Drops a connection made by `connection` (e.g. a replaced worker's), now, without waiting for replies. */
    release (conn: RedisClient): void {
      const i = connections.indexOf(conn)
      if (i >= 0) connections.splice(i, 1)
      conn.disconnect()
    },
    /** The options a connection for `purpose` is made with (for one server). */
    options: (purpose: RedisPurpose): RedisOptions => ({ ...base, ...byPurpose[purpose] }),
    async close () {
      if (closed) return
      closed = true
      await Promise.all(connections.map(async (c) => {
        // QUIT needs a live connection; one that is down (or never came up) would wait forever.
        if (c.status !== 'ready') { c.disconnect(); return }
        let timer: NodeJS.Timeout | undefined
        try {
          await Promise.race([c.quit(), new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('quit timed out')), 1000) })])
        } catch {
          c.disconnect()
        } finally {
          clearTimeout(timer)
        }
      }))
    }
  }
}
export type RedisInfra = ReturnType<typeof createRedisInfra>

/** Decorates `redis` (null when REDIS_DISABLED) and closes every connection on close. */
export default fp(async function redisPlugin (app) {
  const target = app.config.redis
  const infra = target ? createRedisInfra({ target, commandTimeoutMs: app.config.REDIS_COMMAND_TIMEOUT_MS, log: app.log.child({ component: 'redis' }) }) : null
  app.decorate('redis', infra)
  app.addHook('onClose', async () => { await infra?.close() })
}, { name: 'redis', dependencies: ['core'], decorators: { fastify: ['config'] } })
