import { randomUUID } from 'node:crypto'
import { eq } from 'drizzle-orm'
import { beforeAll, describe, expect, it } from 'vitest'
import { alerts, units } from '../../../src/db/schema.js'
import { useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'

const errorBody = (code: string) => ({ error: { code, message: expect.any(String) } })
const now = new Date('2025-03-01T08:00:00.000Z')

describe('management: units', () => {
  const ctx = useTestApp({ clock: now })
  let a: OrgFixture
  let b: OrgFixture
  const manager = () => ctx.bearer({ [a.org.id]: 'manager' })
  const unitCount = () => ctx.db.$count(units, eq(units.organizationId, a.org.id))
  const readUnit = async (id: string) => (await ctx.db.select().from(units).where(eq(units.id, id)))[0]
  const eventsFor = (unitId: string) => ctx.emitted.filter((e) => e.payload.unitId === unitId)

  beforeAll(async () => {
    a = await ctx.org({ units: 2, createdAt: now })
    b = await ctx.org({ units: 1, createdAt: now })
  })

  async function createUnit (payload: Record<string, unknown>) {
    return ctx.app.inject({ method: 'POST', url: `/api/orgs/${a.org.id}/units`, headers: manager(), payload })
  }

  it('creates a unit that starts normal, with no reading yet', async () => {
    const res = await createUnit({ siteId: a.site.id, name: ' Walk-in 1 ', unitType: 'walk_in_freezer', tempMin: -25, tempMax: -15.5 })
    expect(res.statusCode).toBe(201)
    expect(res.json()).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      organizationId: a.org.id,
      siteId: a.site.id,
      name: 'Walk-in 1',
      unitType: 'walk_in_freezer',
      tempMin: -25,
      tempMax: -15.5,
      state: 'normal',
      lastTemperature: null,
      lastReadingAt: null,
      stateChangedAt: now.toISOString(),
      isActive: true,
      createdAt: now.toISOString()
    })
    const get = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/units/${res.json().id}`, headers: ctx.bearer({ [a.org.id]: 'viewer' }) })
    expect(get.statusCode).toBe(200)
    expect(get.json()).toEqual(res.json())
  })

  it.each([
    ['a site of another organization', () => ({ siteId: b.site.id }), 404, 'NOT_FOUND'],
    ['a site that does not exist', () => ({ siteId: randomUUID() }), 404, 'NOT_FOUND'],
    ['a malformed siteId', () => ({ siteId: 'site-1' }), 400, 'VALIDATION_ERROR'],
    ['tempMin above tempMax', () => ({ tempMin: 9, tempMax: 2 }), 400, 'VALIDATION_ERROR'],
    ['tempMin equal to tempMax', () => ({ tempMin: 4, tempMax: 4 }), 400, 'VALIDATION_ERROR'],
    ['thresholds equal once stored to two decimals', () => ({ tempMin: 4.001, tempMax: 4.004 }), 400, 'VALIDATION_ERROR'],
    ['tempMax above 100', () => ({ tempMax: 100.5 }), 400, 'VALIDATION_ERROR'],
    ['tempMin below -100', () => ({ tempMin: -101 }), 400, 'VALIDATION_ERROR'],
    ['an unknown unitType', () => ({ unitType: 'oven' }), 400, 'VALIDATION_ERROR'],
    ['a missing name', () => ({ name: undefined }), 400, 'VALIDATION_ERROR'],
    ['an unknown field', () => ({ state: 'too_hot' }), 400, 'VALIDATION_ERROR']
  ])('rejects %s and writes nothing', async (_case, override, status, code) => {
    const before = await unitCount()
    const res = await createUnit({ siteId: a.site.id, name: 'Bad', unitType: 'fridge', tempMin: 2, tempMax: 8, ...override() })
    expect(res.statusCode).toBe(status)
    expect(res.json()).toEqual(errorBody(code))
    if (status === 404) expect(res.json().error.message).toBe('site not found')
    expect(await unitCount()).toBe(before)
  })

  it('lists the organization\'s units, filtered by site and state', async () => {
    const viewer = ctx.bearer({ [a.org.id]: 'viewer' })
    const all = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/units`, headers: viewer })
    expect(all.statusCode).toBe(200)
    const ids = all.json().map((u: { id: string }) => u.id)
    expect(ids).toEqual(expect.arrayContaining(a.units.map((u) => u.id)))
    expect(ids).not.toContain(b.units[0]!.id)
    expect(all.json().every((u: { organizationId: string }) => u.organizationId === a.org.id)).toBe(true)

    const site = await ctx.app.inject({ method: 'POST', url: `/api/orgs/${a.org.id}/sites`, headers: manager(), payload: { name: 'Second site' } })
    const other = await createUnit({ siteId: site.json().id, name: 'Display', unitType: 'display_case', tempMin: 0, tempMax: 5 })
    const bySite = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/units?siteId=${site.json().id}`, headers: viewer })
    expect(bySite.json()).toEqual([other.json()])

    await ctx.db.update(units).set({ state: 'offline' }).where(eq(units.id, a.units[1]!.id))
    const offline = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/units?state=offline`, headers: viewer })
    expect(offline.json().map((u: { id: string }) => u.id)).toEqual([a.units[1]!.id])

    const bad = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/units?state=melting`, headers: viewer })
    expect(bad.statusCode).toBe(400)
  })

  it('answers 404 for a unit of another organization and 400 for a malformed id', async () => {
    const viewer = ctx.bearer({ [a.org.id]: 'viewer' })
    const foreign = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/units/${b.units[0]!.id}`, headers: viewer })
    expect(foreign.statusCode).toBe(404)
    expect(foreign.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'unit not found' } })
    const malformed = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/units/42`, headers: viewer })
    expect(malformed.statusCode).toBe(400)
    expect(malformed.json()).toEqual(errorBody('VALIDATION_ERROR'))
  })

  describe('PATCH', () => {
    const patch = (unitId: string, payload: unknown, orgId = a.org.id) =>
      ctx.app.inject({ method: 'PATCH', url: `/api/orgs/${orgId}/units/${unitId}`, headers: ctx.bearer({ [orgId]: 'manager' }), payload: payload as object })

    it('re-evaluates the state when a threshold change puts the last reading out of range', async () => {
      const unit = a.units[0]!
      await ctx.db.update(units).set({ lastTemperature: 5, lastReadingAt: now, state: 'normal' }).where(eq(units.id, unit.id))
      const res = await patch(unit.id, { tempMax: 4 })
      expect(res.statusCode).toBe(200)
      expect(res.json()).toMatchObject({ id: unit.id, tempMin: 2, tempMax: 4, state: 'too_hot', lastTemperature: 5 })
      // Re-evaluated in the update's own transaction (src/features/management/service.ts), published once it commits.
      expect(eventsFor(unit.id)).toEqual([
        {
          name: 'unitUpdate',
          payload: expect.objectContaining({ organizationId: a.org.id, unitId: unit.id, state: 'too_hot', previousState: 'normal', lastTemperature: 5 })
        },
        { name: 'alertCreated', payload: expect.objectContaining({ organizationId: a.org.id, unitId: unit.id, type: 'temperature_excursion', status: 'active' }) }
      ])
      const open = await ctx.db.select().from(alerts).where(eq(alerts.unitId, unit.id))
      expect(open).toEqual([expect.objectContaining({ status: 'active', threshold: 'temp_max', triggerTemperature: 5, triggeredAt: now })])
    })

    it('resolves the open alerts of a unit it deactivates, in the same change', async () => {
      const created = await createUnit({ siteId: a.site.id, name: 'Retire me', unitType: 'fridge', tempMin: 2, tempMax: 8 })
      const id = created.json().id as string
      await ctx.db.update(units).set({ lastTemperature: 5, lastReadingAt: now, state: 'normal' }).where(eq(units.id, id))
      expect((await patch(id, { tempMax: 4 })).json().state).toBe('too_hot')
      ctx.emitted.length = 0
      const off = await patch(id, { isActive: false })
      expect(off.statusCode).toBe(200)
      expect(off.json()).toMatchObject({ id, isActive: false })
      expect(eventsFor(id)).toEqual([
        { name: 'alertResolved', payload: expect.objectContaining({ organizationId: a.org.id, unitId: id, type: 'temperature_excursion', status: 'resolved' }) }
      ])
      const rows = await ctx.db.select().from(alerts).where(eq(alerts.unitId, id))
      expect(rows).toEqual([expect.objectContaining({ status: 'resolved', resolvedAt: now })])
    })

    it('renames without re-evaluating or emitting anything', async () => {
      // A stored state that disagrees with the thresholds: re-evaluation would be visible as a unitUpdate.
      const created = await createUnit({ siteId: a.site.id, name: 'Rename me', unitType: 'fridge', tempMin: 2, tempMax: 8 })
      const id = created.json().id as string
      await ctx.db.update(units).set({ lastTemperature: 12, lastReadingAt: now, state: 'normal' }).where(eq(units.id, id))

      const res = await patch(id, { name: 'Renamed' })
      expect(res.statusCode).toBe(200)
      expect(res.json()).toMatchObject({ id, name: 'Renamed', state: 'normal', tempMin: 2, tempMax: 8 })
      const same = await patch(id, { tempMin: 2, tempMax: 8, isActive: true })
      expect(same.statusCode).toBe(200)
      expect(eventsFor(id)).toEqual([])
    })

    it('deactivates and reactivates a unit', async () => {
      const id = a.units[1]!.id
      const off = await patch(id, { isActive: false })
      expect(off.statusCode).toBe(200)
      expect(off.json().isActive).toBe(false)
      expect((await readUnit(id))?.isActive).toBe(false)
      const on = await patch(id, { isActive: true })
      expect(on.json().isActive).toBe(true)
    })

    it.each([
      ['an empty body', {}, 400, 'VALIDATION_ERROR'],
      ['tempMin at or above the current tempMax', { tempMin: 8 }, 400, 'VALIDATION_ERROR'],
      ['tempMax at or below the current tempMin', { tempMax: 1 }, 400, 'VALIDATION_ERROR'],
      ['both thresholds inverted', { tempMin: 5, tempMax: 3 }, 400, 'VALIDATION_ERROR'],
      ['a threshold out of range', { tempMax: 150 }, 400, 'VALIDATION_ERROR'],
      ['a field that cannot be patched', { unitType: 'freezer' }, 400, 'VALIDATION_ERROR'],
      ['a blank name', { name: '' }, 400, 'VALIDATION_ERROR']
    ])('rejects %s and changes nothing', async (_case, payload, status, code) => {
      const created = await createUnit({ siteId: a.site.id, name: 'Stable', unitType: 'fridge', tempMin: 2, tempMax: 8 })
      const before = await readUnit(created.json().id)
      const res = await patch(created.json().id, payload)
      expect(res.statusCode).toBe(status)
      expect(res.json()).toEqual(errorBody(code))
      expect(await readUnit(created.json().id)).toEqual(before)
    })

    it('answers 404 for a unit of another organization and leaves it untouched', async () => {
      const foreign = b.units[0]!
      const res = await patch(foreign.id, { name: 'Hijacked' })
      expect(res.statusCode).toBe(404)
      expect((await readUnit(foreign.id))?.name).toBe(foreign.name)
    })
  })
})
