import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { backends, useTestApp } from '../../helpers/fixture.js'

// The setup a new customer goes through, on PostgreSQL and on the embedded PGlite path.
describe.each(backends)('management happy path on $name', ({ name }) => {
  const ctx = useTestApp({ backend: name })

  it('creates an organization, a site, a unit and a device, and reads them back', async () => {
    const tag = randomBytes(4).toString('hex')
    const org = await ctx.app.inject({ method: 'POST', url: '/api/orgs', headers: ctx.bearer({}, { admin: true }), payload: { name: `Deli ${tag}` } })
    expect(org.statusCode).toBe(201)
    const orgId = org.json().id as string
    expect(org.json()).toMatchObject({ name: `Deli ${tag}`, slug: `deli-${tag}` })
    const headers = ctx.bearer({ [orgId]: 'owner' })

    const site = await ctx.app.inject({ method: 'POST', url: `/api/orgs/${orgId}/sites`, headers, payload: { name: 'Main street' } })
    expect(site.statusCode).toBe(201)

    const unit = await ctx.app.inject({
      method: 'POST',
      url: `/api/orgs/${orgId}/units`,
      headers,
      payload: { siteId: site.json().id, name: 'Dairy fridge', unitType: 'fridge', tempMin: 1.5, tempMax: 4.25 }
    })
    expect(unit.statusCode).toBe(201)
    expect(unit.json()).toMatchObject({ organizationId: orgId, siteId: site.json().id, tempMin: 1.5, tempMax: 4.25, state: 'normal' })

    const device = await ctx.app.inject({
      method: 'POST',
      url: `/api/orgs/${orgId}/devices`,
      headers,
      payload: { unitId: unit.json().id, deviceEui: `eui-${tag}`, battery: 100 }
    })
    expect(device.statusCode).toBe(201)
    expect(device.json()).toMatchObject({ organizationId: orgId, unitId: unit.json().id, deviceEui: `eui-${tag}`, status: 'offline', battery: 100 })

    const sites = await ctx.app.inject({ url: `/api/orgs/${orgId}/sites`, headers })
    expect(sites.json()).toEqual([site.json()])
    const unitList = await ctx.app.inject({ url: `/api/orgs/${orgId}/units`, headers })
    expect(unitList.json()).toEqual([unit.json()])
    const devices = await ctx.app.inject({ url: `/api/orgs/${orgId}/devices`, headers })
    expect(devices.json()).toEqual([device.json()])

    const patched = await ctx.app.inject({ method: 'PATCH', url: `/api/orgs/${orgId}/units/${unit.json().id}`, headers, payload: { tempMax: 5 } })
    expect(patched.statusCode).toBe(200)
    expect(patched.json()).toEqual({ ...unit.json(), tempMax: 5 })

    const duplicate = await ctx.app.inject({
      method: 'POST',
      url: `/api/orgs/${orgId}/devices`,
      headers,
      payload: { unitId: unit.json().id, deviceEui: `eui-${tag}` }
    })
    expect(duplicate.statusCode).toBe(409)
    expect(duplicate.json().error.code).toBe('DUPLICATE_DEVICE_EUI')
  })
})
