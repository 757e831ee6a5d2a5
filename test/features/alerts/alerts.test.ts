import { randomUUID } from 'node:crypto'
import { beforeEach, describe, expect, it } from 'vitest'
import { backends, useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'

const T0 = new Date('2030-05-01T06:00:00.000Z')
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000)

describe.each(backends)('alert endpoints ($name)', ({ name }) => {
  const ctx = useTestApp({ backend: name, clock: T0 })
  const emitted = ctx.emitted
  let fx: OrgFixture

  beforeEach(async () => {
    ctx.clock.set(T0)
    emitted.length = 0
    fx = await ctx.org({ units: 2, tempMin: 2, tempMax: 8, createdAt: T0 })
  })

  const manager = () => ctx.bearer({ [fx.org.id]: 'manager' })
  const viewer = () => ctx.bearer({ [fx.org.id]: 'viewer' })

  /** A reading from unit i's device at `minutes`, through the device API, the clock moved there. */
  async function reading (i: number, minutes: number, temperature: number) {
    ctx.clock.set(at(minutes))
    const res = await ctx.ingest(fx, [{ deviceEui: fx.devices[i]!.deviceEui, temperature, recordedAt: at(minutes) }])
    expect(res.statusCode).toBe(202)
  }

  const list = (query = '', headers = viewer()) => ctx.app.inject({ url: `/api/orgs/${fx.org.id}/alerts${query}`, headers })
  const act = (alertId: string, action: 'acknowledge' | 'resolve', headers = manager()) =>
    ctx.app.inject({ method: 'POST', url: `/api/orgs/${fx.org.id}/alerts/${alertId}/${action}`, headers })

  async function openExcursion (): Promise<string> {
    await reading(0, 0, 9.5)
    const [alert] = (await list()).json()
    return alert.id
  }

  it('lists alerts newest first with the documented fields, filtered by status, unit and limit', async () => {
    await reading(0, 0, 9.5)
    await reading(1, 1, 0.5)
    await reading(0, 2, 5)
    const res = await list()
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body).toEqual([
      {
        id: expect.any(String),
        organizationId: fx.org.id,
        unitId: fx.units[1]!.id,
        type: 'temperature_excursion',
        severity: 'warning',
        status: 'active',
        triggerTemperature: 0.5,
        threshold: 'temp_min',
        triggeredAt: at(1).toISOString(),
        acknowledgedAt: null,
        resolvedAt: null
      },
      expect.objectContaining({ unitId: fx.units[0]!.id, status: 'resolved', threshold: 'temp_max', triggerTemperature: 9.5, resolvedAt: at(2).toISOString() })
    ])
    expect((await list('?status=resolved')).json().map((a: { unitId: string }) => a.unitId)).toEqual([fx.units[0]!.id])
    expect((await list(`?unitId=${fx.units[1]!.id}`)).json()).toHaveLength(1)
    expect((await list('?status=acknowledged')).json()).toEqual([])
    expect((await list('?limit=1')).json()).toHaveLength(1)
  })

  it('rejects bad list parameters with 400', async () => {
    for (const q of ['?status=open', '?unitId=nope', '?limit=0', '?limit=1001']) {
      const res = await list(q)
      expect(res.statusCode, q).toBe(400)
      expect(res.json().error.code).toBe('VALIDATION_ERROR')
    }
  })

  it('acknowledges an active alert once, publishing alertAcknowledged', async () => {
    const id = await openExcursion()
    ctx.clock.set(at(3))
    emitted.length = 0
    const res = await act(id, 'acknowledge')
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({ id, status: 'acknowledged', acknowledgedAt: at(3).toISOString(), resolvedAt: null })
    expect(emitted).toEqual([{
      name: 'alertAcknowledged',
      payload: { organizationId: fx.org.id, alertId: id, unitId: fx.units[0]!.id, type: 'temperature_excursion', severity: 'warning', status: 'acknowledged' }
    }])
    ctx.clock.set(at(4))
    const again = await act(id, 'acknowledge')
    expect(again.statusCode).toBe(200)
    expect(again.json()).toMatchObject({ status: 'acknowledged', acknowledgedAt: at(3).toISOString() })
    expect(emitted).toHaveLength(1)
  })

  it('resolves an acknowledged alert, publishing alertResolved; acknowledging it afterwards is 409', async () => {
    const id = await openExcursion()
    await act(id, 'acknowledge')
    ctx.clock.set(at(5))
    emitted.length = 0
    const res = await act(id, 'resolve')
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({ id, status: 'resolved', resolvedAt: at(5).toISOString() })
    expect(emitted).toEqual([{ name: 'alertResolved', payload: expect.objectContaining({ alertId: id, status: 'resolved' }) }])

    const ack = await act(id, 'acknowledge')
    expect(ack.statusCode).toBe(409)
    expect(ack.json()).toEqual({ error: { code: 'ALERT_RESOLVED', message: expect.any(String) } })
    const again = await act(id, 'resolve')
    expect(again.statusCode).toBe(200)
    expect(again.json().resolvedAt).toBe(at(5).toISOString())
    expect(emitted).toHaveLength(1)
  })

  it('a unit still out of range after a manual resolve raises a new alert on its next reading', async () => {
    const id = await openExcursion()
    await act(id, 'resolve')
    await reading(0, 1, 9.6)
    const open = (await list('?status=active')).json()
    expect(open).toEqual([expect.objectContaining({ unitId: fx.units[0]!.id, triggerTemperature: 9.6 })])
    expect(open[0].id).not.toBe(id)
  })

  it('answers 409 to acknowledging an alert that resolved itself', async () => {
    const id = await openExcursion()
    await reading(0, 1, 5)
    expect((await act(id, 'acknowledge')).statusCode).toBe(409)
  })

  it('answers 404 for an alert that is not in the organization', async () => {
    const other = await ctx.org({ units: 1, createdAt: T0 })
    ctx.clock.set(at(1))
    expect((await ctx.ingest(other, [{ deviceEui: other.devices[0]!.deviceEui, temperature: 20, recordedAt: at(1) }])).statusCode).toBe(202)
    const [foreign] = (await ctx.app.inject({ url: `/api/orgs/${other.org.id}/alerts`, headers: ctx.bearer({ [other.org.id]: 'viewer' }) })).json()
    for (const id of [foreign.id, randomUUID()]) {
      for (const action of ['acknowledge', 'resolve'] as const) {
        const res = await act(id, action)
        expect(res.statusCode).toBe(404)
        expect(res.json()).toEqual({ error: { code: 'NOT_FOUND', message: expect.any(String) } })
      }
    }
    expect((await act('not-a-uuid', 'resolve')).statusCode).toBe(400)
  })

  it('lets a viewer read but not act (403), and nobody without a token (401) or from another org (403)', async () => {
    const id = await openExcursion()
    emitted.length = 0
    expect((await list()).statusCode).toBe(200)
    const asViewer = await act(id, 'acknowledge', viewer())
    expect(asViewer.statusCode).toBe(403)
    expect(asViewer.json().error.code).toBe('FORBIDDEN')
    expect((await act(id, 'resolve', viewer())).statusCode).toBe(403)
    expect((await act(id, 'resolve', {} as ReturnType<typeof viewer>)).statusCode).toBe(401)
    expect((await list('', ctx.bearer({ [randomUUID()]: 'owner' }))).statusCode).toBe(403)
    expect((await act(id, 'resolve', ctx.bearer({ [fx.org.id]: 'owner' }))).statusCode).toBe(200)
    expect(emitted.map((e) => e.name)).toEqual(['alertResolved'])
  })
})
