import type { Server as HttpServer } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import { Server, type ServerOptions } from 'socket.io'
import type { TokenService } from '../auth/tokens.js'
import type { ChangeEvent } from '../changes/events.js'

/**
 * An organization's room, `org:{<orgId>}`: the braces are the organization's Redis Cluster hash tag, so the
 * sharded adapter's channel for the room lives in the same slot as the organization's cache entries.
 */
export const orgRoom = (orgId: string) => `org:{${orgId}}`

/**
 * Socket.io on the HTTP server: JWT in the handshake (`auth: { token }`), one `org:{<id>}` room per
 * organization in the token, events emitted to the organization's room. `adapter` fans events out
 * across instances (the Redis adapter); without it events stay on this instance.
 */
export function createRealtime (opts: {
  server: HttpServer
  tokens: TokenService
  log: FastifyBaseLogger
  corsOrigins: string[] | boolean
  adapter?: ServerOptions['adapter']
  onEmit?: (event: ChangeEvent) => void
}) {
  const log = opts.log.child({ component: 'realtime' })
  const io = new Server(opts.server, {
    cors: { origin: opts.corsOrigins },
    serveClient: false,
    ...(opts.adapter ? { adapter: opts.adapter } : {})
  })

  io.use((socket, next) => {
    const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token
    if (typeof token !== 'string' || token === '') return next(new Error('unauthorized'))
    try {
      socket.data.principal = opts.tokens.verify(token)
      next()
    } catch {
      next(new Error('unauthorized'))
    }
  })

  io.on('connection', (socket) => {
    const orgs = Object.keys((socket.data.principal as { orgs: Record<string, string> }).orgs)
    void socket.join(orgs.map(orgRoom))
  })

  let closed = false
  return {
    io,
    /** To the event's organization room, on every instance. */
    emit (event: ChangeEvent): void {
      io.to(orgRoom(event.payload.organizationId)).emit(event.name, event.payload)
      opts.onEmit?.(event)
    },
    /** Disconnects clients and detaches engine.io; the HTTP server itself is Fastify's to close. */
    async close () {
      if (closed) return
      closed = true
      // `local`: with the Redis adapter a plain disconnectSockets() is broadcast to every instance, so
      // stopping one instance (a rolling deploy) would drop every client of all of them.
      io.local.disconnectSockets(true)
      io.engine.close()
      await Promise.resolve(io.of('/').adapter.close())
      log.debug('socket.io closed')
    }
  }
}
export type Realtime = ReturnType<typeof createRealtime>
