import { beforeEach, describe, expect, it } from 'vitest'
import { eq, sql } from 'drizzle-orm'
import { alerts, apiKeys, devices, sensorReadings, units } from '../../../src/db/schema.js'
import { backends, useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'

const T0 = new Date('2030-04-01T12:00:00.000Z')
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000).toISOString()

describe.each(backends)('POST /api/ingest/readings ($name)', ({ name }) => {
  const ctx = useTestApp({ backend: name, clock: T0 })
  const emitted = ctx.emitted
  let fx: OrgFixture

  beforeEach(async () => {
    ctx.clock.set(T0)
    emitted.length = 0
    fx = await ctx.org({ units: 2, tempMin: 2, tempMax: 8, createdAt: T0 })
  })

  const eui = (i: number) => fx.devices[i]!.deviceEui
  const ingest = (payload: unknown, headers: Record<string, string> = { 'x-api-key': fx.apiKey }) =>
    ctx.app.inject({ method: 'POST', url: '/api/ingest/readings', headers, payload: payload as object })
  const storedCount = async () => {
    const [row] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(sensorReadings).where(eq(sensorReadings.organizationId, fx.org.id))
    return row!.n
  }
  const unitRow = async (i: number) => (await ctx.db.select().from(units).where(eq(units.id, fx.units[i]!.id)))[0]!

  it('stores a batch, replies 202 and updates unit state, device and events', async () => {
    const res = await ingest({
      readings: [
        { deviceEui: eui(0), temperature: 4.2, recordedAt: at(0), humidity: 55.5, battery: 91 },
        { deviceEui: eui(1), temperature: 9.1, recordedAt: at(0) }
      ]
    })
    expect(res.statusCode).toBe(202)
    expect(res.json()).toEqual({ accepted: 2, duplicates: 0 })
    expect(await storedCount()).toBe(2)
    expect(await unitRow(0)).toMatchObject({ state: 'normal', lastTemperature: 4.2 })
    expect(await unitRow(1)).toMatchObject({ state: 'too_hot', lastTemperature: 9.1 })
    const [device] = await ctx.db.select().from(devices).where(eq(devices.id, fx.devices[0]!.id))
    expect(device).toMatchObject({ status: 'online', battery: 91, lastSeenAt: new Date(at(0)) })
    expect(emitted.map((e) => e.name).sort()).toEqual(['alertCreated', 'deviceStatusChange', 'deviceStatusChange', 'unitUpdate'])
    expect(emitted.every((e) => e.payload.organizationId === fx.org.id)).toBe(true)
  })

  it('is idempotent: the same batch twice stores nothing the second time', async () => {
    const batch = { readings: [0, 1, 2].map((m) => ({ deviceEui: eui(0), temperature: 5 + m, recordedAt: at(m) })) }
    expect((await ingest(batch)).json()).toEqual({ accepted: 3, duplicates: 0 })
    const before = emitted.length
    const again = await ingest(batch)
    expect(again.statusCode).toBe(202)
    expect(again.json()).toEqual({ accepted: 0, duplicates: 3 })
    expect(await storedCount()).toBe(3)
    expect(emitted.length).toBe(before)
  })

  it('counts repeats inside one batch as duplicates, the same instant written differently included', async () => {
    const res = await ingest({
      readings: [
        { deviceEui: eui(0), temperature: 5, recordedAt: at(1) },
        { deviceEui: eui(0), temperature: 5, recordedAt: at(1).replace('Z', '+00:00') }
      ]
    })
    expect(res.json()).toEqual({ accepted: 1, duplicates: 1 })
    expect(await storedCount()).toBe(1)
  })

  it('processes a shuffled batch in recordedAt order', async () => {
    const res = await ingest({
      readings: [
        { deviceEui: eui(0), temperature: 7.4, recordedAt: at(3) },
        { deviceEui: eui(0), temperature: 9, recordedAt: at(1) },
        { deviceEui: eui(0), temperature: 5, recordedAt: at(0) },
        { deviceEui: eui(0), temperature: 7.6, recordedAt: at(2) }
      ]
    })
    expect(res.statusCode).toBe(202)
    expect(await unitRow(0)).toMatchObject({ state: 'normal', lastTemperature: 7.4, lastReadingAt: new Date(at(3)) })
    const rows = await ctx.db.select().from(alerts).where(eq(alerts.unitId, fx.units[0]!.id))
    expect(rows).toEqual([expect.objectContaining({ status: 'resolved', triggerTemperature: 9, resolvedAt: new Date(at(3)) })])
  })

  it('counts ingested and duplicate readings in the metrics', async () => {
    const value = async (c: typeof ctx.app.metrics.readingsIngested) => (await c.get()).values[0]?.value ?? 0
    const ingested = await value(ctx.app.metrics.readingsIngested)
    const duplicate = await value(ctx.app.metrics.readingsDuplicate)
    const batch = { readings: [{ deviceEui: eui(0), temperature: 5, recordedAt: at(0) }] }
    await ingest(batch)
    await ingest(batch)
    expect(await value(ctx.app.metrics.readingsIngested)).toBe(ingested + 1)
    expect(await value(ctx.app.metrics.readingsDuplicate)).toBe(duplicate + 1)
  })

  describe('rejects an invalid batch whole, writing nothing', () => {
    const good = () => ({ deviceEui: eui(0), temperature: 5, recordedAt: at(0) })
    const cases: Array<[string, () => unknown, number, string]> = [
      ['an unknown device', () => ({ readings: [good(), { ...good(), deviceEui: 'no-such-device' }] }), 400, 'UNKNOWN_DEVICE'],
      ['a temperature of 150 °C', () => ({ readings: [good(), { ...good(), recordedAt: at(1), temperature: 150 }] }), 400, 'VALIDATION_ERROR'],
      ['a recordedAt 10 minutes in the future', () => ({ readings: [good(), { ...good(), recordedAt: at(10) }] }), 400, 'VALIDATION_ERROR'],
      ['an unparseable date', () => ({ readings: [good(), { ...good(), recordedAt: 'yesterday at noon' }] }), 400, 'VALIDATION_ERROR'],
      ['an impossible date', () => ({ readings: [good(), { ...good(), recordedAt: '2030-02-30T10:00:00Z' }] }), 400, 'VALIDATION_ERROR'],
      ['a date without a time zone', () => ({ readings: [good(), { ...good(), recordedAt: '2030-04-01T11:00:00' }] }), 400, 'VALIDATION_ERROR'],
      ['a temperature sent as a string', () => ({ readings: [good(), { ...good(), recordedAt: at(1), temperature: '5' }] }), 400, 'VALIDATION_ERROR'],
      ['a null temperature (never stored as 0 °C)', () => ({ readings: [good(), { ...good(), recordedAt: at(1), temperature: null }] }), 400, 'VALIDATION_ERROR'],
      ['a fractional battery', () => ({ readings: [good(), { ...good(), recordedAt: at(1), battery: 50.5 }] }), 400, 'VALIDATION_ERROR'],
      ['a humidity of 101 %', () => ({ readings: [good(), { ...good(), recordedAt: at(1), humidity: 101 }] }), 400, 'VALIDATION_ERROR'],
      ['a missing recordedAt', () => ({ readings: [good(), { deviceEui: eui(0), temperature: 5 }] }), 400, 'VALIDATION_ERROR'],
      ['an unexpected field', () => ({ readings: [good(), { ...good(), recordedAt: at(1), unit: 'F' }] }), 400, 'VALIDATION_ERROR'],
      ['an empty batch', () => ({ readings: [] }), 400, 'VALIDATION_ERROR'],
      ['a body without readings', () => ({}), 400, 'VALIDATION_ERROR'],
      ['1001 readings', () => ({ readings: Array.from({ length: 1001 }, (_, i) => ({ ...good(), recordedAt: new Date(T0.getTime() - i * 1000).toISOString() })) }), 400, 'VALIDATION_ERROR']
    ]
    it.each(cases)('%s', async (_name, payload, status, code) => {
      const res = await ingest(payload())
      expect(res.statusCode).toBe(status)
      expect(res.json()).toEqual({ error: { code, message: expect.any(String) } })
      expect(await storedCount()).toBe(0)
    })

    it("another organization's device, even mixed with its own", async () => {
      const other = await ctx.org({ units: 1, createdAt: T0 })
      const res = await ingest({ readings: [good(), { ...good(), deviceEui: other.devices[0]!.deviceEui }] })
      expect(res.statusCode).toBe(400)
      expect(res.json().error.code).toBe('UNKNOWN_DEVICE')
      expect(await storedCount()).toBe(0)
      const [row] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(sensorReadings).where(eq(sensorReadings.organizationId, other.org.id))
      expect(row!.n).toBe(0)
    })

    // A batch whose months have partitions is resolved and inserted by one statement (src/features/ingestion/service.ts
    // insertResolved); any other batch is resolved first. Both refuse the same way.
    it('an unknown device after a stored batch (one statement), named in the batch\'s order, and nothing of the batch stored', async () => {
      expect((await ingest({ readings: [good()] })).statusCode).toBe(202)
      const res = await ingest({ readings: [{ ...good(), recordedAt: at(1) }, { ...good(), deviceEui: 'zz-unknown', recordedAt: at(2) }, { ...good(), deviceEui: 'aa-unknown', recordedAt: at(3) }] })
      expect(res.statusCode).toBe(400)
      expect(res.json()).toEqual({ error: { code: 'UNKNOWN_DEVICE', message: 'unknown device: zz-unknown, aa-unknown' } })
      expect(await storedCount()).toBe(1)
    })

    it('an unknown device in a month without a partition creates no partition', async () => {
      const month = '2029_07'
      const partitions = async () => (await ctx.db.execute(sql`SELECT count(*)::int AS n FROM pg_class WHERE relname = ${`sensor_readings_${month}`}`) as unknown as { rows: Array<{ n: number }> }).rows[0]!.n
      expect(await partitions()).toBe(0)
      const res = await ingest({ readings: [{ ...good(), recordedAt: '2029-07-15T10:00:00.000Z' }, { ...good(), deviceEui: 'no-such-device', recordedAt: '2029-07-15T10:01:00.000Z' }] })
      expect(res.statusCode).toBe(400)
      expect(res.json().error.code).toBe('UNKNOWN_DEVICE')
      expect(await partitions()).toBe(0)
      expect(await storedCount()).toBe(0)
    })

    const raw = (body: string, contentType: string) => ctx.app.inject({
      method: 'POST', url: '/api/ingest/readings', headers: { 'x-api-key': fx.apiKey, 'content-type': contentType }, payload: body
    })

    it('a body that is not JSON', async () => {
      const res = await raw('{"readings": [', 'application/json')
      expect(res.statusCode).toBe(400)
      expect(res.json().error.code).toBe('INVALID_JSON')
      expect(await storedCount()).toBe(0)
    })

    it('a content type other than JSON', async () => {
      const res = await raw(JSON.stringify({ readings: [good()] }), 'text/plain')
      expect(res.statusCode).toBe(415)
      expect(res.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE')
      expect(await storedCount()).toBe(0)
    })

    it('a body over 1 MiB', async () => {
      const body = JSON.stringify({ readings: [good()] }).replace('[', '[' + ' '.repeat(1024 * 1024))
      const res = await raw(body, 'application/json')
      expect(res.statusCode).toBe(413)
      expect(res.json().error.code).toBe('PAYLOAD_TOO_LARGE')
      expect(await storedCount()).toBe(0)
    })
  })

  it('answers 401 without an API key, with a wrong one, with a revoked one, and with a JWT instead', async () => {
    const batch = { readings: [{ deviceEui: eui(0), temperature: 5, recordedAt: at(0) }] }
    const noKey = await ingest(batch, {})
    expect(noKey.statusCode).toBe(401)
    expect(noKey.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.any(String) } })
    expect((await ingest(batch, { 'x-api-key': 'cb_not-a-key' })).statusCode).toBe(401)
    const jwt = ctx.app.tokens.sign({ sub: 'u', orgs: { [fx.org.id]: 'owner' } })
    expect((await ingest(batch, { authorization: `Bearer ${jwt}` })).statusCode).toBe(401)
    await ctx.db.update(apiKeys).set({ revokedAt: T0 }).where(eq(apiKeys.organizationId, fx.org.id))
    expect((await ingest(batch)).statusCode).toBe(401)
    expect(await storedCount()).toBe(0)
  })
})

describe('ingestion rate limit (postgres)', () => {
  const ctx = useTestApp({ env: { RATE_LIMIT_MAX: '2' } })

  it('limits each API key to RATE_LIMIT_MAX requests a minute, independently of other keys', async () => {
    const a = await ctx.org({ units: 1 })
    const b = await ctx.org({ units: 1 })
    const send = (fx: OrgFixture, i: number) => ctx.ingest(fx, [{ deviceEui: fx.devices[0]!.deviceEui, temperature: 5, recordedAt: new Date(Date.now() - i * 60_000) }])
    expect((await send(a, 1)).statusCode).toBe(202)
    expect((await send(a, 2)).statusCode).toBe(202)
    const limited = await send(a, 3)
    expect(limited.statusCode).toBe(429)
    expect(limited.json()).toEqual({ error: { code: 'RATE_LIMITED', message: expect.any(String) } })
    expect((await send(b, 1)).statusCode).toBe(202)
  })
})
