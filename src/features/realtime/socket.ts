import type { Server as HttpServer } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import { Server, type ServerOptions } from 'socket.io'
import type { Principal, TokenService } from '../auth/tokens.js'
import type { ChangeEvent } from '../changes/events.js'

/** An organization's room, `org:<orgId>` (SPEC §4); on a cluster the sharded adapter gives it its own channel. */
export const orgRoom = (orgId: string) => `org:${orgId}`
/** Sent to a client whose token has expired, just before its connection is closed. */
export const AUTH_EXPIRED = 'authExpired'
/** setTimeout's longest delay (about 24.8 days); a later expiry is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Socket.io on the HTTP server: JWT in the handshake (`auth: { token }`), one `org:<id>` room per
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
    const principal = socket.data.principal as Principal
    void socket.join(Object.keys(principal.orgs).map(orgRoom))
    // The handshake's token is the connection's credential: when it expires the connection ends, and the client is
    // told why, so that the page asks for a new token instead of silently receiving nothing.
    let timer: NodeJS.Timeout | undefined
    const expireAt = (at: number) => {
      const wait = at - Date.now()
      timer = wait > MAX_TIMER_MS
        ? setTimeout(() => expireAt(at), MAX_TIMER_MS)
        : setTimeout(() => {
          socket.emit(AUTH_EXPIRED, { reason: 'token expired', expiredAt: new Date(at).toISOString() })
          socket.disconnect(true)
        }, Math.max(0, wait))
      timer.unref()
    }
    expireAt(principal.expiresAt)
    socket.once('disconnect', () => clearTimeout(timer))
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
