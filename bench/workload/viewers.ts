import { io, type Socket } from 'socket.io-client'
import type { HttpClient } from './http.js'
import type { Kind, Outcome, Panel, Recorder } from './latency.js'

export const liveEvents = ['unitUpdate', 'alertCreated', 'alertAcknowledged', 'alertResolved', 'alertEscalated', 'deviceStatusChange'] as const
type LiveEvent = typeof liveEvents[number]

export interface ViewerOrg { orgId: string, token: string, unitIds: string[] }

interface Viewer {
  socket: Socket
  base: string
  unitId: string
  urls: Record<Panel, string>
  headers: Record<string, string>
  refresh: Record<Panel, (kind: Kind) => void>
  timers: NodeJS.Timeout[]
}

/** What an event changes on the page: the panels a dashboard client refetches when it arrives. */
export function panelsFor (event: LiveEvent, payload: { unitId?: string }, viewerUnitId: string): Panel[] {
  switch (event) {
    case 'unitUpdate': return payload.unitId === viewerUnitId ? ['overview', 'unitCounts', 'unitTrend'] : ['overview', 'unitCounts']
    case 'deviceStatusChange': return ['overview', 'devicesOnline']
    default: return ['overview', 'alertCounts']
  }
}

/**
 * Dashboard viewers as the page in web/ behaves: one Socket.io connection each (the JWT in the handshake),
 * the five panels loaded every `pollMs` at a random phase, and the affected panels refetched on every event.
 * A panel already loading is reloaded once more when it finishes (web/src/main.ts `coalesced`), never twice
 * at once. Viewer v talks to targets[v % targets.length], HTTP and socket alike (sticky, like nginx in deploy/).
 */
export function createViewerFleet (opts: {
  targets: string[]
  orgs: ViewerOrg[]
  viewersPerOrg: number
  pollMs: number
  http: HttpClient
  recorder: Recorder
  random: () => number
}) {
  const viewers: Viewer[] = []
  const inFlight = new Set<Promise<void>>()
  const events: Record<string, number> = Object.fromEntries(liveEvents.map((e) => [e, 0]))
  const failures = { status: {} as Record<string, number>, disconnects: 0 }
  let stopped = false

  function outcomeOf (status: number, xCache: unknown): Outcome {
    if (status !== 200) {
      failures.status[String(status)] = (failures.status[String(status)] ?? 0) + 1
      return 'error'
    }
    return xCache === 'hit' || xCache === 'miss' || xCache === 'bypass' ? xCache : 'error'
  }

  function coalesced (v: { urls: Record<Panel, string>, headers: Record<string, string> }, panel: Panel): (kind: Kind) => void {
    let running = false
    let again: Kind | null = null
    const run = (kind: Kind): void => {
      running = true
      const p = opts.http.get(v.urls[panel], v.headers).then((r) => {
        opts.recorder.record(panel, r.ms, outcomeOf(r.status, r.headers['x-cache']), kind)
      }).finally(() => {
        inFlight.delete(p)
        running = false
        const next = again
        again = null
        if (next && !stopped) run(next)
      })
      inFlight.add(p)
    }
    return (kind) => {
      if (stopped) return
      if (running) again = again === 'refetch' ? 'refetch' : kind
      else run(kind)
    }
  }

  let n = 0
  for (const org of opts.orgs) {
    for (let i = 0; i < opts.viewersPerOrg; i++) {
      const base = opts.targets[n++ % opts.targets.length]!
      const unitId = org.unitIds[i % org.unitIds.length]!
      const api = `${base}/api/orgs/${org.orgId}`
      const urls: Record<Panel, string> = {
        overview: `${api}/dashboard`,
        unitCounts: `${api}/dashboard/units/status`,
        alertCounts: `${api}/dashboard/alerts/count`,
        devicesOnline: `${api}/dashboard/devices/online`,
        unitTrend: `${api}/units/${unitId}/temperature-trends`
      }
      const headers = { authorization: `Bearer ${org.token}` }
      const partial = { urls, headers }
      const refresh = {
        overview: coalesced(partial, 'overview'),
        unitCounts: coalesced(partial, 'unitCounts'),
        alertCounts: coalesced(partial, 'alertCounts'),
        devicesOnline: coalesced(partial, 'devicesOnline'),
        unitTrend: coalesced(partial, 'unitTrend')
      }
      const socket = io(base, { auth: { token: org.token }, transports: ['websocket'], forceNew: true, autoConnect: false, reconnectionDelayMax: 2000 })
      const viewer: Viewer = { socket, base, unitId, urls, headers, refresh, timers: [] }
      for (const name of liveEvents) {
        socket.on(name, (payload: { organizationId?: string, unitId?: string }) => {
          events[name]!++
          if (payload.organizationId !== org.orgId) return
          for (const panel of panelsFor(name, payload, unitId)) refresh[panel]('refetch')
        })
      }
      socket.on('disconnect', () => { if (!stopped) failures.disconnects++ })
      viewers.push(viewer)
    }
  }

  function pollAll (v: Viewer): void {
    for (const p of Object.keys(v.refresh) as Panel[]) v.refresh[p]('poll')
  }

  return {
    size: viewers.length,
    /** Opens every socket; rejects when one is refused or not connected within the deadline. */
    async connect (timeoutMs = 30_000): Promise<void> {
      await Promise.all(viewers.map((v) => new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`viewer socket to ${v.base} not connected after ${timeoutMs} ms`)), timeoutMs)
        v.socket.once('connect', () => { clearTimeout(timer); resolve() })
        v.socket.once('connect_error', (err) => {
          if (!v.socket.active) { clearTimeout(timer); reject(new Error(`viewer socket refused: ${err.message}`)) }
        })
        v.socket.connect()
      })))
    },
    /** Every viewer loads its panels at a random phase within one poll period, then every period. */
    startPolling (): void {
      for (const v of viewers) {
        const phase = opts.random() * opts.pollMs
        v.timers.push(setTimeout(() => {
          if (stopped) return
          pollAll(v)
          v.timers.push(setInterval(() => pollAll(v), opts.pollMs))
        }, phase))
      }
    },
    /** Stops polling and refetching, waits for the requests in flight, closes the sockets. */
    async stop (): Promise<void> {
      stopped = true
      for (const v of viewers) for (const t of v.timers) clearTimeout(t)
      await Promise.all([...inFlight])
      for (const v of viewers) v.socket.close()
    },
    stats: () => ({ viewers: viewers.length, eventsReceived: { ...events }, failures: { ...failures, status: { ...failures.status } } })
  }
}
export type ViewerFleet = ReturnType<typeof createViewerFleet>
