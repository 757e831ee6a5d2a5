// Socket.io: the server pushes each change to the organization's room; the page refetches what changed.

import { io } from 'socket.io-client'

export type LiveStatus = 'connecting' | 'live' | 'reconnecting' | 'refused'

export const liveEvents = [
  'unitUpdate', 'alertCreated', 'alertAcknowledged', 'alertResolved', 'alertEscalated', 'deviceStatusChange'
] as const
export type LiveEvent = typeof liveEvents[number]

/**
 * Connects to this origin with the token. `onResync` runs after every reconnection: events sent while
 * the connection was down are lost, so everything is refetched.
 */
export function connectLive (token: string, handlers: {
  onStatus: (status: LiveStatus, detail?: string) => void
  onEvent: (name: LiveEvent, payload: { organizationId: string, unitId?: string }) => void
  onResync: () => void
  /** The token expired: the server closed the connection; the page must sign in again. */
  onExpired: (detail: string) => void
}): () => void {
  // WebSocket first (no sticky sessions needed behind a load balancer), long-polling as the fallback.
  const socket = io({ auth: { token }, transports: ['websocket', 'polling'], tryAllTransports: true })
  let connectedBefore = false
  handlers.onStatus('connecting')
  socket.on('connect', () => {
    handlers.onStatus('live')
    if (connectedBefore) handlers.onResync()
    connectedBefore = true
  })
  socket.on('disconnect', (reason) => {
    handlers.onStatus('reconnecting')
    // The server closing the socket (a restart) is not retried by the client on its own.
    if (reason === 'io server disconnect') socket.connect()
  })
  socket.on('connect_error', (err) => {
    // A rejected handshake (bad or expired token) is final; anything else is retried with backoff.
    if (!socket.active) handlers.onStatus('refused', err.message)
    else handlers.onStatus('reconnecting')
  })
  socket.on('authExpired', (p: { reason?: string }) => {
    socket.close()
    handlers.onStatus('refused', p?.reason ?? 'token expired')
    handlers.onExpired(p?.reason ?? 'token expired')
  })
  for (const name of liveEvents) socket.on(name, (payload: { organizationId: string, unitId?: string }) => handlers.onEvent(name, payload))
  return () => { socket.close() }
}
