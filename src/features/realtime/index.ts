import fp from 'fastify-plugin'
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter'
import type { Redis } from 'ioredis'
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
    const sub = app.redis.connection('io-sub')
    const prefix = `${app.config.REDIS_KEY_PREFIX}socket.io`
    if (app.redis.sharded) {
      catchFailures(pub, 'spublish', log)
      adapter = createShardedAdapter(pub, sub, { channelPrefix: prefix, subscriptionMode: 'dynamic' })
    } else {
      catchFailures(pub, 'publish', log)
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
 * The classic adapter does not handle a failed PUBLISH; while Redis is down, local clients still get the event and
 * other instances miss it, which must not become an unhandled rejection (nor, for the sharded one, go unlogged).
 */
function catchFailures (pub: RedisClient, command: 'publish' | 'spublish', log: { warn: (o: object, m: string) => void }): void {
  const send = (pub[command] as Redis['publish']).bind(pub) as (channel: string, message: string | Buffer) => Promise<number>
  ;(pub as unknown as Record<string, unknown>)[command] = (channel: string, message: string | Buffer) =>
    send(channel, message).catch((err: Error) => {
      log.warn({ err: err.message }, 'socket.io fan-out publish failed')
      return 0
    })
}
