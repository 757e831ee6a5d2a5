import { createSigner } from 'fast-jwt'
import { io, type Socket } from 'socket.io-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { testJwtSecret, useTestApp } from '../helpers/fixture.js'
import type { OrgFixture } from '../helpers/fixtures.js'
import { waitFor } from '../helpers/redis.js'

describe('a Socket.io connection lives no longer than its token', () => {
  const ctx = useTestApp({ listen: true })
  let f: OrgFixture
  const sockets: Socket[] = []
  beforeAll(async () => { f = await ctx.org({ units: 1 }) })
  afterAll(() => { for (const s of sockets) s.disconnect() })

  async function connect (token: string): Promise<{ socket: Socket, events: string[], expired: Array<{ reason: string }> }> {
    const socket = io(ctx.url, { auth: { token }, transports: ['websocket'], reconnection: false })
    sockets.push(socket)
    const events: string[] = []
    const expired: Array<{ reason: string }> = []
    socket.onAny((name: string) => events.push(name))
    socket.on('authExpired', (p: { reason: string }) => expired.push(p))
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('connect_error', reject) })
    return { socket, events, expired }
  }
  const unitUpdate = () => ctx.app.changes.commit(async () => ({
    value: undefined,
    events: [{ name: 'unitUpdate' as const, payload: { organizationId: f.org.id, unitId: f.units[0]!.id, state: 'too_hot' as const, previousState: 'normal' as const, lastTemperature: 9, lastReadingAt: new Date().toISOString() } }]
  }))

  it('is told its token expired and is disconnected at expiry, receiving nothing afterwards', async () => {
    const shortLived = createSigner({ key: testJwtSecret, expiresIn: 1500 })({ sub: 'u', orgs: { [f.org.id]: 'viewer' } })
    const longLived = createSigner({ key: testJwtSecret, expiresIn: 3600_000 })({ sub: 'v', orgs: { [f.org.id]: 'viewer' } })
    const short = await connect(shortLived)
    const long = await connect(longLived)
    await unitUpdate()
    await waitFor(() => short.events.includes('unitUpdate') && long.events.includes('unitUpdate'), 5000, 'the first event')
    await waitFor(() => !short.socket.connected, 10_000, 'the expired connection to close')
    expect(short.expired).toEqual([expect.objectContaining({ reason: 'token expired' })])
    const before = short.events.length
    await unitUpdate()
    await waitFor(() => long.events.filter((e) => e === 'unitUpdate').length === 2, 5000, 'the second event on the live connection')
    expect(short.events.length).toBe(before) // authExpired was its last event
    expect(short.events.at(-1)).toBe('authExpired')
    expect(long.socket.connected).toBe(true)
  })
})
