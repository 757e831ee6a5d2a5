import { randomUUID } from 'node:crypto'
import type { Server } from 'node:http'
import { io as connectClient, type Socket } from 'socket.io-client'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createSigner } from 'fast-jwt'
import type { App } from '../../src/app.js'
import { createTokenService } from '../../src/features/auth/tokens.js'
import type { ChangeEvent, UnitUpdatePayload } from '../../src/features/changes/events.js'
import { buildTestApp, testJwtSecret, useTestApp, type TestContext } from '../helpers/fixture.js'

const orgA = randomUUID()
const orgB = randomUUID()

function unitUpdate (organizationId: string, unitId = randomUUID()): ChangeEvent & { payload: UnitUpdatePayload } {
  return {
    name: 'unitUpdate',
    payload: { organizationId, unitId, state: 'too_hot', previousState: 'normal', lastTemperature: 9.5, lastReadingAt: '2025-03-01T08:00:00.000Z' }
  }
}

const tokenOf = (ctx: TestContext, orgs: string[]) => ctx.token(Object.fromEntries(orgs.map((o) => [o, 'viewer'])))
/** Through the write path, as every change is emitted (src/features/changes/pipeline.ts). */
const publish = (app: App, events: ChangeEvent[]) => app.changes.commit(async () => ({ value: undefined, events }))

/** A client that has either connected (resolves) or been refused (rejects with the connect_error). */
function open (clients: Socket[], url: string, auth: Record<string, unknown>): Promise<Socket> {
  const socket = connectClient(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true })
  clients.push(socket)
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket))
    socket.once('connect_error', reject)
  })
}

/** Records every unitUpdate a client receives and lets a test wait for one unit's event. */
function record (socket: Socket) {
  const received: UnitUpdatePayload[] = []
  const waiters: Array<() => void> = []
  socket.on('unitUpdate', (p: UnitUpdatePayload) => {
    received.push(p)
    for (const w of waiters.splice(0)) w()
  })
  return {
    received,
    async waitFor (unitId: string, timeoutMs = 5000): Promise<UnitUpdatePayload> {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const hit = received.find((p) => p.unitId === unitId)
        if (hit) return hit
        if (Date.now() > deadline) throw new Error(`no unitUpdate for ${unitId} within ${timeoutMs} ms`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 100)
          waiters.push(() => { clearTimeout(timer); resolve() })
        })
      }
    }
  }
}

describe('realtime: Socket.io rooms per organization', () => {
  let server: Server | null = null
  // Registered before the fixture's hooks, so it runs after the fixture has closed the app.
  afterAll(() => { expect(server?.listening ?? true).toBe(false) })
  const ctx = useTestApp({ listen: true })
  let clients: Socket[] = []

  beforeAll(() => { server = ctx.app.server })
  afterEach(() => {
    for (const c of clients) c.close()
    clients = []
  })

  it('delivers an organization\'s events to its members and nobody else\'s', async () => {
    const client = record(await open(clients, ctx.url, { token: tokenOf(ctx, [orgA]) }))
    const first = unitUpdate(orgA)
    await publish(ctx.app, [first])
    expect(await client.waitFor(first.payload.unitId)).toEqual(first.payload)

    // B's event goes out before A's marker on the same connection: had it been delivered, it would be here by now.
    const foreign = unitUpdate(orgB)
    const marker = unitUpdate(orgA)
    await publish(ctx.app, [foreign])
    await publish(ctx.app, [marker])
    await client.waitFor(marker.payload.unitId)
    expect(client.received.map((p) => p.organizationId)).toEqual([orgA, orgA])
    expect(client.received.map((p) => p.unitId)).toEqual([first.payload.unitId, marker.payload.unitId])
  })

  it('joins a token with two organizations to both rooms', async () => {
    const client = record(await open(clients, ctx.url, { token: tokenOf(ctx, [orgA, orgB]) }))
    const a = unitUpdate(orgA)
    const b = unitUpdate(orgB)
    await publish(ctx.app, [a, b])
    expect(await client.waitFor(a.payload.unitId)).toEqual(a.payload)
    expect(await client.waitFor(b.payload.unitId)).toEqual(b.payload)
  })

  it.each<[string, (app: App) => Record<string, unknown>]>([
    ['no token', () => ({})],
    ['an empty token', () => ({ token: '' })],
    ['a token that is not a JWT', () => ({ token: 'not-a-jwt' })],
    ['a token signed with another secret', () => ({
      token: createTokenService('another-secret-another-secret-0123456789', { maxTtlMs: 86_400_000 }).sign({ sub: 'x', orgs: { [orgA]: 'owner' } })
    })],
    ['an expired token', () => ({ token: createSigner({ key: testJwtSecret, expiresIn: 600_000, clockTimestamp: Date.now() - 3600_000 })({ sub: 'x', orgs: { [orgA]: 'owner' } }) })],
    ['a token without an expiry', () => ({ token: createSigner({ key: testJwtSecret })({ sub: 'x', orgs: { [orgA]: 'owner' } }) })]
  ])('refuses %s with connect_error "unauthorized"', async (_case, auth) => {
    const refused = open(clients, ctx.url, auth(ctx.app))
    await expect(refused).rejects.toThrow('unauthorized')
    expect(clients.at(-1)?.connected).toBe(false)
  })
})

describe('realtime across instances (Redis adapter)', () => {
  const ctx = useTestApp({ redis: true, listen: true })
  let two: { app: App, url: string }
  let clients: Socket[] = []

  beforeAll(async () => { two = await ctx.peer({ listen: true }) })
  afterAll(() => {
    for (const c of clients) c.close()
    clients = []
  })

  it('delivers an event published on one instance to clients of the other, and only to its organization', async () => {
    const member = record(await open(clients, ctx.url, { token: tokenOf(ctx, [orgA]) }))
    const stranger = record(await open(clients, ctx.url, { token: tokenOf(ctx, [orgB]) }))

    // The adapter's Redis subscription starts in the background: resend until the first one lands.
    const deadline = Date.now() + 10_000
    let delivered: string | undefined
    while (!delivered) {
      const probe = unitUpdate(orgA)
      await publish(two.app, [probe])
      try {
        await member.waitFor(probe.payload.unitId, 200)
        delivered = probe.payload.unitId
      } catch (err) {
        if (Date.now() > deadline) throw err
      }
    }

    const event = unitUpdate(orgA)
    await publish(two.app, [event])
    expect(await member.waitFor(event.payload.unitId)).toEqual(event.payload)
    const marker = unitUpdate(orgB)
    await publish(two.app, [marker])
    await stranger.waitFor(marker.payload.unitId)
    expect(stranger.received.every((p) => p.organizationId === orgB)).toBe(true)
    expect(member.received.every((p) => p.organizationId === orgA)).toBe(true)
  })

  it('closing one instance (a rolling deploy) leaves the clients of the other connected', async () => {
    const client = await open(clients, ctx.url, { token: tokenOf(ctx, [orgA]) })
    const reasons: string[] = []
    client.on('disconnect', (reason) => reasons.push(reason))
    // A third instance of the deployment (same database, Redis and prefix), closed by the test itself.
    const third = await buildTestApp({ database: ctx.database, prefix: ctx.prefix, redis: true })
    const thirdUrl = await third.listen({ port: 0, host: '127.0.0.1' })
    const own = await open(clients, thirdUrl, { token: tokenOf(ctx, [orgA]) })
    const ownGone = new Promise<string>((resolve) => own.once('disconnect', resolve))
    await third.close()
    expect(await ownGone).toBe('io server disconnect')
    // A broadcast disconnect would have reached this client by now: the other instance's own did.
    const probe = unitUpdate(orgA)
    const got = record(client)
    await publish(ctx.app, [probe])
    await got.waitFor(probe.payload.unitId)
    expect(client.connected).toBe(true)
    expect(reasons).toEqual([])
  })
})
