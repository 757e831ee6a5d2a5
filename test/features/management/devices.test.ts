import { randomBytes, randomUUID } from 'node:crypto'
import { eq } from 'drizzle-orm'
import { beforeAll, describe, expect, it } from 'vitest'
import { devices } from '../../../src/db/schema.js'
import { useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'

const errorBody = (code: string) => ({ error: { code, message: expect.any(String) } })
const now = new Date('2025-03-01T08:00:00.000Z')

describe('management: devices', () => {
  const ctx = useTestApp({ clock: now })
  let a: OrgFixture
  let b: OrgFixture
  const deviceCount = () => ctx.db.$count(devices)
  const eui = () => `70b3d5${randomBytes(5).toString('hex')}`
  const createDevice = (payload: Record<string, unknown>, orgId = a.org.id) =>
    ctx.app.inject({ method: 'POST', url: `/api/orgs/${orgId}/devices`, headers: ctx.bearer({ [orgId]: 'manager' }), payload })

  beforeAll(async () => {
    a = await ctx.org({ units: 2, createdAt: now })
    b = await ctx.org({ units: 1, createdAt: now })
  })

  it('registers a device that is offline until it reports', async () => {
    const deviceEui = eui()
    const res = await createDevice({ unitId: a.units[0]!.id, deviceEui, battery: 87 })
    expect(res.statusCode).toBe(201)
    expect(res.json()).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      organizationId: a.org.id,
      unitId: a.units[0]!.id,
      deviceEui,
      status: 'offline',
      lastSeenAt: null,
      battery: 87,
      createdAt: now.toISOString()
    })
    const noBattery = await createDevice({ unitId: a.units[0]!.id, deviceEui: eui() })
    expect(noBattery.statusCode).toBe(201)
    expect(noBattery.json().battery).toBeNull()
  })

  it('refuses an EUI already registered, in this organization or another, with 409', async () => {
    const taken = b.devices[0]!.deviceEui
    const before = await deviceCount()
    const res = await createDevice({ unitId: a.units[0]!.id, deviceEui: taken })
    expect(res.statusCode).toBe(409)
    expect(res.json()).toEqual(errorBody('DUPLICATE_DEVICE_EUI'))
    const own = await createDevice({ unitId: a.units[1]!.id, deviceEui: a.devices[0]!.deviceEui })
    expect(own.statusCode).toBe(409)
    expect(await deviceCount()).toBe(before)
    const [row] = await ctx.db.select().from(devices).where(eq(devices.deviceEui, taken))
    expect(row?.organizationId).toBe(b.org.id)
  })

  it.each([
    ['a unit of another organization', () => ({ unitId: b.units[0]!.id }), 404, 'NOT_FOUND'],
    ['a unit that does not exist', () => ({ unitId: randomUUID() }), 404, 'NOT_FOUND'],
    ['a malformed unitId', () => ({ unitId: 'fridge-1' }), 400, 'VALIDATION_ERROR'],
    ['an empty EUI', () => ({ deviceEui: '' }), 400, 'VALIDATION_ERROR'],
    ['an EUI with spaces', () => ({ deviceEui: 'eui 1' }), 400, 'VALIDATION_ERROR'],
    ['a battery above 100 %', () => ({ battery: 101 }), 400, 'VALIDATION_ERROR'],
    ['a fractional battery', () => ({ battery: 50.5 }), 400, 'VALIDATION_ERROR'],
    ['an unknown field', () => ({ status: 'online' }), 400, 'VALIDATION_ERROR']
  ])('rejects %s and writes nothing', async (_case, override, status, code) => {
    const before = await deviceCount()
    const res = await createDevice({ unitId: a.units[1]!.id, deviceEui: eui(), ...override() })
    expect(res.statusCode).toBe(status)
    expect(res.json()).toEqual(errorBody(code))
    if (status === 404) expect(res.json().error.message).toBe('unit not found')
    expect(await deviceCount()).toBe(before)
  })

  it('lists the organization\'s devices, filtered by unit', async () => {
    const viewer = ctx.bearer({ [a.org.id]: 'viewer' })
    const all = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/devices`, headers: viewer })
    expect(all.statusCode).toBe(200)
    const euis = all.json().map((d: { deviceEui: string }) => d.deviceEui)
    expect(euis).toEqual([...euis].sort())
    expect(euis).toEqual(expect.arrayContaining(a.devices.map((d) => d.deviceEui)))
    expect(euis).not.toContain(b.devices[0]!.deviceEui)

    const byUnit = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/devices?unitId=${a.units[1]!.id}`, headers: viewer })
    expect(byUnit.json()).toEqual([{
      id: a.devices[1]!.id,
      organizationId: a.org.id,
      unitId: a.units[1]!.id,
      deviceEui: a.devices[1]!.deviceEui,
      status: 'offline',
      lastSeenAt: null,
      battery: null,
      createdAt: now.toISOString()
    }])

    const malformed = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/devices?unitId=x`, headers: viewer })
    expect(malformed.statusCode).toBe(400)
  })

  it('refuses viewers and other organizations\' members', async () => {
    const before = await deviceCount()
    const viewer = await ctx.app.inject({
      method: 'POST',
      url: `/api/orgs/${a.org.id}/devices`,
      headers: ctx.bearer({ [a.org.id]: 'viewer' }),
      payload: { unitId: a.units[0]!.id, deviceEui: eui() }
    })
    expect(viewer.statusCode).toBe(403)
    const other = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/devices`, headers: ctx.bearer({ [b.org.id]: 'owner' }) })
    expect(other.statusCode).toBe(403)
    expect(await deviceCount()).toBe(before)
  })
})
