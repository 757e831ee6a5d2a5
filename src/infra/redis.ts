import fp from 'fastify-plugin'
import { Redis, type RedisOptions } from 'ioredis'

declare module 'fastify' {
  interface FastifyInstance { redis: RedisInfra | null }
}

export type RedisPurpose = 'cache' | 'cache-sub' | 'io-pub' | 'io-sub' | 'queue' | 'worker'
/** A connection as the cache and the real-time layer use it. */
export type RedisClient = Redis

/**
 * One place that knows how coldboard talks to Redis (D1, D6). The cache connection never queues a
 * command while disconnected and gives up on a slow reply after REDIS_COMMAND_TIMEOUT_MS, so a dead or
 * slow Redis costs a request at most that long (D9); every connection reconnects in the background.
 */
export function createRedisInfra (opts: { url: string, commandTimeoutMs: number, log: { warn: (o: object, m: string) => void } }) {
  const connections: Redis[] = []
  const base: RedisOptions = {
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), 2000),
    lazyConnect: false
  }
  const byPurpose: Record<RedisPurpose, RedisOptions> = {
    // Fail fast: no offline queue, one bounded attempt per command.
    // Auto-pipelining batches the commands of concurrent requests into one write (+20–35 % hit throughput
    // measured in bench/hit-path.ts).
    cache: { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: opts.commandTimeoutMs, enableAutoPipelining: true },
    'cache-sub': { enableOfflineQueue: true, maxRetriesPerRequest: null },
    'io-pub': { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: opts.commandTimeoutMs },
    'io-sub': { enableOfflineQueue: true, maxRetriesPerRequest: null },
    // BullMQ producer: BullMQ sends its start-up commands before 'ready', so they may queue; ingestion
    // itself only enqueues while the connection is ready, under a timeout, and falls back to inline work.
    queue: { enableOfflineQueue: true, maxRetriesPerRequest: 1, commandTimeout: Math.max(opts.commandTimeoutMs, 1000) },
    // BullMQ worker: blocking commands, BullMQ requires maxRetriesPerRequest: null.
    worker: { enableOfflineQueue: true, maxRetriesPerRequest: null }
  }
  let closed = false
  const logged = new WeakSet<Error>()

  function connection (purpose: RedisPurpose): Redis {
    const conn = new Redis(opts.url, { ...base, ...byPurpose[purpose], connectionName: `coldboard:${purpose}` })
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

  return {
    url: opts.url,
    connection,
    /** The options a connection for `purpose` is made with. */
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
  const cfg = app.config.redis
  const infra = cfg ? createRedisInfra({ url: cfg.url, commandTimeoutMs: app.config.REDIS_COMMAND_TIMEOUT_MS, log: app.log.child({ component: 'redis' }) }) : null
  app.decorate('redis', infra)
  app.addHook('onClose', async () => { await infra?.close() })
}, { name: 'redis', dependencies: ['core'], decorators: { fastify: ['config'] } })
