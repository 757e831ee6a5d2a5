import fp from 'fastify-plugin'
import { createAdapter } from '@socket.io/redis-adapter'
import type { Redis } from 'ioredis'
import { createRealtime, type Realtime } from './socket.js'

declare module 'fastify' {
  interface FastifyInstance { realtime: Realtime }
}

/**
 * Socket.io on the app's HTTP server, fanned out across instances by @socket.io/redis-adapter (its channels
 * behind REDIS_KEY_PREFIX) when Redis is configured. `realtime.emit` is the write path's last step (src/app.ts).
 */
export default fp(async function realtimePlugin (app) {
  const log = app.log.child({ component: 'realtime' })
  let adapter: ReturnType<typeof createAdapter> | undefined
  if (app.redis) {
    const pub = app.redis.connection('io-pub')
    const sub = app.redis.connection('io-sub')
    // The adapter does not handle a failed PUBLISH; while Redis is down, local clients still get the
    // event and other instances miss it, which must not become an unhandled rejection.
    const publish = pub.publish.bind(pub) as (channel: string, message: string | Buffer) => Promise<number>
    ;(pub as unknown as { publish: Redis['publish'] }).publish = ((channel: string, message: string | Buffer) =>
      publish(channel, message).catch((err: Error) => {
        log.warn({ err: err.message }, 'socket.io fan-out publish failed')
        return 0
      })) as Redis['publish']
    adapter = createAdapter(pub, sub, { key: `${app.config.REDIS_KEY_PREFIX}socket.io` })
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
