import fp from 'fastify-plugin'
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter'
import type { RedisClient } from '../../infra/redis.js'
import { createRealtime, type Realtime } from './socket.js'

declare module 'fastify' {
  interface FastifyInstance { realtime: Realtime }
}

/**
 * Socket.io on the app's HTTP server, fanned out across instances by @socket.io/redis-adapter (its channels
 * behind REDIS_KEY_PREFIX) when Redis is configured: on a Redis Cluster its sharded adapter (SPUBLISH/SSUBSCRIBE,
 * Redis ≥ 7, one channel per room), whose organization rooms carry the organization's hash tag, so an event goes
 * to the one shard that also holds that organization's cache entries: the fan-out and the invalidation it
 * follows live and fail together. `realtime.emit` is the write path's last step (src/app.ts).
 */
export default fp(async function realtimePlugin (app) {
  const log = app.log.child({ component: 'realtime' })
  let adapter: ReturnType<typeof createAdapter> | ReturnType<typeof createShardedAdapter> | undefined
  if (app.redis) {
    const pub = app.redis.connection('io-pub')
    const sub = app.redis.subscriber('io-sub')
    const prefix = `${app.config.REDIS_KEY_PREFIX}socket.io`
    if (app.redis.sharded) {
      catchFailures(pub, 'spublish', log)
      // The adapter subscribes per room as clients come and go, and leaves those promises unhandled; ioredis
      // subscribes again to every channel once the shard is back (after a failover, on the promoted replica).
      catchFailures(sub, 'ssubscribe', log)
      catchFailures(sub, 'sunsubscribe', log)
      adapter = createShardedAdapter(pub, sub, { channelPrefix: prefix, subscriptionMode: 'dynamic' })
    } else {
      catchFailures(pub, 'publish', log)
      // Its constructor subscribes, and its close() unsubscribes, without waiting: on a connection closed before
      // the reply (an app closed right after start-up), a rejection nobody handles. ioredis subscribes again to
      // every channel on reconnection.
      catchFailures(sub, 'psubscribe', log)
      catchFailures(sub, 'subscribe', log)
      catchFailures(sub, 'punsubscribe', log)
      catchFailures(sub, 'unsubscribe', log)
      adapter = createAdapter(pub, sub, { key: prefix })
    }
  }
  const realtime = createRealtime({
    server: app.server,
    tokens: app.tokens,
    log: app.log,
    corsOrigins: app.config.corsOrigins,
    adapter,
    onEmit: (event) => app.metrics.eventsEmitted.inc({ event: event.name })
  })
  app.decorate('realtime', realtime)
  // preClose: open WebSockets would otherwise keep the HTTP server from closing.
  app.addHook('preClose', async () => { await realtime.close() })
}, { name: 'realtime', dependencies: ['core', 'auth', 'redis'], decorators: { fastify: ['config', 'metrics', 'redis', 'tokens'] } })

/**
 * The adapters leave some Redis promises unhandled (the classic one a failed PUBLISH, the SUBSCRIBEs of its
 * constructor and the UNSUBSCRIBEs of its close, the sharded one its SSUBSCRIBE/SUNSUBSCRIBE). While Redis is down, local clients still get the event and other instances miss it;
 * that must be logged, not become an unhandled rejection.
 */
function catchFailures (conn: RedisClient, command: 'publish' | 'spublish' | 'ssubscribe' | 'sunsubscribe' | 'psubscribe' | 'subscribe' | 'punsubscribe' | 'unsubscribe', log: { warn: (o: object, m: string) => void }): void {
  const send = (conn[command] as (...args: unknown[]) => Promise<unknown>).bind(conn)
  ;(conn as unknown as Record<string, unknown>)[command] = (...args: unknown[]) =>
    send(...args).catch((err: Error) => {
      log.warn({ err: err.message, command }, 'socket.io fan-out command failed')
      return 0
    })
}
