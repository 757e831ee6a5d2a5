import { io, type Socket } from 'socket.io-client'
import type { OrgFixture } from './fixtures.js'
import { waitFor } from './redis.js'

export type CacheOutcome = 'hit' | 'miss' | 'bypass'

export interface StreamFigures {
  /** Rounds run (one reading each, alternating 12 °C and 5 °C on the fixture's first unit). */
  rounds: number
  /** Events the writing instance's client received. */
  events: number
  /** Events each client received (a client on another instance misses those whose fan-out failed). */
  eventsPerClient: [number, number]
  /** Rounds whose events never came (their evaluation was lost with a queue job, and caught up later). */
  roundsWithoutEvents: number
  /** Dashboard reads checked against the event that prompted them. */
  reads: number
  stale: number
  /** Checked reads by x-cache. */
  outcomes: Record<CacheOutcome, number>
  /** Events that arrived after the writer had moved on (their check would compare against a later change). */
  lateEvents: number
  readingsSent: number
  /** What each stale read was (empty when none). */
  staleReads: string[]
  /** Dashboard reads that did not answer 200 (empty when none). */
  failedReads: string[]
}

export async function connectClient (base: string, token: string): Promise<Socket> {
  const s = io(base, { auth: { token }, transports: ['websocket'], reconnectionDelay: 100, reconnectionDelayMax: 500 })
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('connect_error', reject) })
  return s
}

/**
 * The freshness promise under a stream of events, checked by real clients: one Socket.io client on each of two
 * instances; on every event a client reads the dashboard from the *other* instance and checks the answer against
 * what that event announced. The writer flips the fixture's first unit (one reading per round: 12 °C, then
 * 5 °C, …), so that each event tells the whole truth about the organization: too_hot 1 or 0, one open alert or
 * none — a client that missed earlier events (fan-out down) can still check exactly. `between(round)` runs before
 * each round (kill a primary, restart it…); the stream stops when `until(figures)` says so.
 */
export async function runEventStream (o: {
  bases: [writer: string, other: string]
  fixture: OrgFixture
  token: string
  /** Posts readings (through the writing instance); answers the HTTP status. */
  ingest: (readings: Array<{ deviceEui: string, temperature: number, recordedAt: Date }>) => Promise<number>
  until: (f: StreamFigures) => boolean
  between?: (round: number, f: StreamFigures) => Promise<void>
  /** When the writer's client has not received a round's two events after this long, the round moves on. */
  roundTimeoutMs?: number
  maxRounds?: number
  /** recordedAt of round 0; later rounds are one second apart. */
  startAt?: Date
}): Promise<StreamFigures> {
  const f: StreamFigures = { rounds: 0, events: 0, eventsPerClient: [0, 0], roundsWithoutEvents: 0, reads: 0, stale: 0, outcomes: { hit: 0, miss: 0, bypass: 0 }, lateEvents: 0, readingsSent: 0, staleReads: [], failedReads: [] }
  const orgId = o.fixture.org.id
  const unitId = o.fixture.units[0]!.id
  const headers = { authorization: `Bearer ${o.token}` }
  const checks: Array<Promise<void>> = []
  let round = -1
  const hotIn = (r: number) => r % 2 === 0

  async function read (base: string, path: string): Promise<{ body: Record<string, any>, cache: CacheOutcome }> {
    // A dashboard read never hangs (a Redis fault is answered from PostgreSQL); one that does is a failed read.
    const res = await fetch(`${base}/api/orgs/${orgId}${path}`, { headers, signal: AbortSignal.timeout(10_000) })
    if (res.status !== 200) throw new Error(`GET ${path} on ${base}: ${res.status} ${await res.text()}`)
    return { body: await res.json() as Record<string, any>, cache: res.headers.get('x-cache') as CacheOutcome }
  }
  const verify = async (base: string, path: string, what: string, ok: (b: Record<string, any>) => boolean) => {
    const r = await read(base, path)
    f.reads++
    f.outcomes[r.cache]++
    if (!ok(r.body)) {
      f.stale++
      f.staleReads.push(`${what}: ${path} answered ${JSON.stringify(r.body)} (x-cache ${r.cache})`)
    }
  }

  const clients = await Promise.all(o.bases.map((b) => connectClient(b, o.token)))
  clients.forEach((socket, i) => {
    const other = o.bases[i === 0 ? 1 : 0]
    // The round an event belongs to, by what it says: round parity is the unit's temperature.
    const check = (hot: boolean, run: () => Promise<void>) => {
      if (hotIn(round) !== hot) { f.lateEvents++; return }
      checks.push(run().catch((err: Error) => { f.failedReads.push(err.message) }))
    }
    const counted = () => { f.eventsPerClient[i]!++; if (i === 0) f.events++ }
    socket.on('unitUpdate', (e: { unitId: string, state: string }) => {
      if (e.unitId !== unitId) return
      counted()
      const hot = e.state === 'too_hot' ? 1 : 0
      check(hot === 1, async () => {
        await verify(other, '/dashboard/units/status', `unitUpdate ${e.state}`, (b) => b.too_hot === hot)
        await verify(other, '/dashboard', `unitUpdate ${e.state}`, (b) => b.unitCounts.too_hot === hot)
      })
    })
    for (const name of ['alertCreated', 'alertResolved'] as const) {
      socket.on(name, (e: { unitId: string }) => {
        if (e.unitId !== unitId) return
        counted()
        const open = name === 'alertCreated' ? 1 : 0
        check(open === 1, async () => {
          await verify(other, '/dashboard/alerts/count', name, (b) => b.unresolved === open)
          await verify(other, `/dashboard/alerts/count?unitId=${unitId}`, name, (b) => b.unresolved === open)
          await verify(other, '/dashboard', name, (b) => b.alertCounts.unresolved === open)
        })
      })
    }
  })

  const t0 = (o.startAt ?? new Date(Date.now() - 10 * 60_000)).getTime()
  try {
    for (let r = 0; r < (o.maxRounds ?? 10_000) && !o.until(f); r++) {
      await o.between?.(r, f)
      // Both instances hold the pre-change entries, so a missed invalidation would show.
      for (const base of o.bases) {
        await read(base, '/dashboard/units/status').catch(() => {})
        await read(base, '/dashboard/alerts/count').catch(() => {})
        await read(base, '/dashboard').catch(() => {})
      }
      const [before, beforeOther] = f.eventsPerClient
      round = r
      const status = await o.ingest([{ deviceEui: o.fixture.devices[0]!.deviceEui, temperature: hotIn(r) ? 12 : 5, recordedAt: new Date(t0 + r * 1000) }])
      if (status !== 202) throw new Error(`ingestion answered ${status}`)
      f.readingsSent++
      f.rounds++
      try {
        await waitFor(() => f.eventsPerClient[0] >= before + 2, o.roundTimeoutMs ?? 8000, `events of round ${r}`)
        // The other client gets the events too unless their fan-out failed; a moment's grace, no more.
        await waitFor(() => f.eventsPerClient[1] >= beforeOther + 2, 300, 'fan-out').catch(() => {})
      } catch {
        f.roundsWithoutEvents++
      }
      await Promise.all(checks)
    }
    await Promise.all(checks)
  } finally {
    for (const c of clients) c.disconnect()
  }
  return f
}
