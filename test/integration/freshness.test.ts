import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { io, type Socket } from 'socket.io-client'
import { useTestApp } from '../helpers/fixture.js'
import type { OrgFixture } from '../helpers/fixtures.js'
import { waitFor } from '../helpers/redis.js'
import { metricTotal } from '../helpers/metrics.js'

/**
 * The promise of docs/caching.md, end to end: a real socket.io-client that refetches as soon as it receives an
 * event gets the post-change data — on the instance that made the change and on another one.
 */
describe('fresh after every event', () => {
  // Instance 1 runs the worker (evaluation jobs and the offline sweep); instance 2 is a peer without one.
  const ctx = useTestApp({ redis: true, worker: true, listen: true })
  let base1: string
  let base2: string
  let app2: Awaited<ReturnType<typeof ctx.peer>>['app']
  let f: OrgFixture
  const sockets: Socket[] = []

  beforeAll(async () => {
    base1 = ctx.url
    const peer = await ctx.peer({ listen: true })
    base2 = peer.url
    app2 = peer.app
    f = await ctx.org({ units: 1, tempMin: 2, tempMax: 8 })
  })
  afterAll(async () => {
    for (const s of sockets) s.disconnect()
    await ctx.app.cache.invalidatePattern(ctx.app.dashboard.keys.pattern)
  })

  async function connect (base: string): Promise<Socket> {
    const s = io(base, { auth: { token: ctx.token({ [f.org.id]: 'viewer' }, { sub: 'viewer' }) }, transports: ['websocket'] })
    sockets.push(s)
    await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('connect_error', reject) })
    return s
  }
  const auth = () => ctx.bearer({ [f.org.id]: 'viewer' })
  const getJson = async (base: string, path: string) => {
    const res = await fetch(base + path, { headers: auth() })
    expect(res.status).toBe(200)
    return { body: await res.json() as Record<string, number>, cache: res.headers.get('x-cache') }
  }
  // Readings a second apart from five minutes ago: recent enough that the worker's offline sweep (which
  // runs during these tests) never finds a unit silent, so every event comes from the writer.
  let second = 0
  const start = Date.now() - 5 * 60_000
  async function ingest (temperature: number) {
    second++
    const res = await ctx.ingest(f, [{ deviceEui: f.devices[0]!.deviceEui, temperature, recordedAt: new Date(start + second * 1000) }])
    expect(res.statusCode).toBe(202)
  }

  /**
   * Alternates excursions and recoveries. Before each change every endpoint is read (so the caches of
   * both instances hold the pre-change value); on each event the client refetches at once and must see
   * what the event announced.
   */
  async function flipAndCheck (reader: string, rounds: number) {
    const socket = await connect(reader)
    const unitsPath = `/api/orgs/${f.org.id}/dashboard/units/status`
    const alertsPath = `/api/orgs/${f.org.id}/dashboard/alerts/count`
    const checks: Array<Promise<void>> = []
    let stale = 0
    socket.on('unitUpdate', (e: { state: string }) => {
      checks.push(getJson(reader, unitsPath).then(({ body }) => {
        if (body.too_hot !== (e.state === 'too_hot' ? 1 : 0)) stale++
      }))
    })
    socket.on('alertCreated', () => { checks.push(getJson(reader, alertsPath).then(({ body }) => { if (body.unresolved !== 1) stale++ })) })
    socket.on('alertResolved', () => { checks.push(getJson(reader, alertsPath).then(({ body }) => { if (body.unresolved !== 0) stale++ })) })
    let events = 0
    socket.onAny(() => { events++ })
    for (let i = 0; i < rounds; i++) {
      for (const base of [base1, base2]) {
        await getJson(base, unitsPath)
        await getJson(base, alertsPath)
      }
      const before = events
      await ingest(i % 2 === 0 ? 12 : 5)
      // unitUpdate + alertCreated, or unitUpdate + alertResolved
      await waitFor(() => events >= before + 2, 15_000, `events of round ${i}`)
      // The refetches belong to this change: let them finish before the next change is made.
      await Promise.all(checks)
    }
    await Promise.all(checks)
    socket.disconnect()
    return { stale, checks: checks.length }
  }

  it('a client on the writing instance reads post-change data 100 times in a row', async () => {
    const r = await flipAndCheck(base1, 100)
    expect(r.checks).toBe(200)
    expect(r.stale).toBe(0)
  })

  it('a change made through instance 1 reaches a client on instance 2, whose refetch from instance 2 is fresh', async () => {
    const r = await flipAndCheck(base2, 100)
    expect(r.checks).toBe(200)
    expect(r.stale).toBe(0)
    const final = await getJson(base2, `/api/orgs/${f.org.id}/dashboard/units/status`)
    expect(final.cache).toBe('hit')
    // Both instances held the pre-change values in process (CACHE_LOCAL, on by default) when the changes were made:
    // the reads before each change were answered there, so the fresh refetches above prove that every event's
    // invalidation reached the in-process copies before the event reached the sockets.
    for (const app of [ctx.app, app2]) {
      expect(await metricTotal(app.dashboard.metrics.localHit)).toBeGreaterThan(50)
    }
  })

  it('two instances, a writer flipping units, clients reading the other instance: zero stale reads over 1,000 events', async () => {
    const g = await ctx.org({ units: 2, tempMin: 2, tempMax: 8 })
    const token = ctx.token({ [g.org.id]: 'viewer' }, { sub: 'viewer' })
    const headers = { authorization: `Bearer ${token}` }
    const read = async (base: string, path: string) => (await (await fetch(`${base}/api/orgs/${g.org.id}${path}`, { headers })).json()) as Record<string, any>
    let events = 0
    let stale = 0
    let checked = 0
    const checks: Array<Promise<void>> = []
    const clients = await Promise.all([base1, base2].map(async (base) => {
      const s = io(base, { auth: { token }, transports: ['websocket'] })
      sockets.push(s)
      await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('connect_error', reject) })
      return s
    }))
    // Each client reads the affected endpoints from the *other* instance.
    clients.forEach((socket, i) => {
      const other = i === 0 ? base2 : base1
      // What this client has been told so far: the expectation for its refetch.
      const state = new Map<string, string>(g.units.map((u) => [u.id, 'normal']))
      const open = new Map<string, boolean>(g.units.map((u) => [u.id, false]))
      const verify = (ok: boolean) => { checked++; if (!ok) stale++ }
      socket.on('unitUpdate', (e: { unitId: string, state: string }) => {
        state.set(e.unitId, e.state)
        if (i === 0) events++
        const hot = [...state.values()].filter((v) => v === 'too_hot').length
        checks.push((async () => {
          verify((await read(other, '/dashboard/units/status')).too_hot === hot)
          verify((await read(other, '/dashboard')).unitCounts.too_hot === hot)
        })())
      })
      for (const name of ['alertCreated', 'alertResolved']) {
        socket.on(name, (e: { unitId: string }) => {
          open.set(e.unitId, name === 'alertCreated')
          if (i === 0) events++
          const unresolved = [...open.values()].filter(Boolean).length
          const mine = open.get(e.unitId) ? 1 : 0
          checks.push((async () => {
            verify((await read(other, '/dashboard/alerts/count')).unresolved === unresolved)
            verify((await read(other, `/dashboard/alerts/count?unitId=${e.unitId}`)).unresolved === mine)
            verify((await read(other, '/dashboard')).alertCounts.unresolved === unresolved)
          })())
        })
      }
    })
    const t0 = Date.now() - 5 * 60_000
    for (let round = 0; ; round++) {
      if (events >= 1000) break
      const unit = round % 2
      const temperature = Math.floor(round / 2) % 2 === 0 ? 12 : 5
      for (const base of [base1, base2]) {
        await read(base, '/dashboard/units/status')
        await read(base, '/dashboard/alerts/count')
        await read(base, '/dashboard')
      }
      const before = events
      const res = await ctx.ingest(g, [{ deviceEui: g.devices[unit]!.deviceEui, temperature, recordedAt: new Date(t0 + round * 500) }])
      expect(res.statusCode).toBe(202)
      await waitFor(() => events >= before + 2, 15_000, `events of round ${round}`)
      await waitFor(() => checks.length >= (events * 2), 15_000, 'both clients got the events')
      await Promise.all(checks)
    }
    for (const s of clients) s.disconnect()
    expect(events).toBeGreaterThanOrEqual(1000)
    expect(checked).toBeGreaterThanOrEqual(events * 2 * 2)
    expect(stale).toBe(0)
  }, 180_000)
})
