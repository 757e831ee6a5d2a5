import { gzipSync } from 'node:zlib'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ENVELOPE_VERSION, HEADER_BYTES, open } from '../../../src/features/dashboard/envelope.js'
import type { Entry } from '../../../src/features/dashboard/query-types.js'
import { useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'
import { sharedRedisUrl } from '../../helpers/redis.js'

/**
 * Values under dashboard keys that coldboard did not write — garbage, gzip-looking garbage, a gzip bomb, JSON of
 * the wrong shape, a sealed value whose checksum does not match — are never served: each is counted, deleted, and
 * the read answered from PostgreSQL, over HTTP, with and without gzip. A value of another format version (another
 * coldboard during a rolling upgrade) is not served either, but it is a plain miss, not an error.
 */
describe('a dashboard entry coldboard did not write', () => {
  // What Redis holds is under test: no in-process copy of the good value in front of it (CACHE_LOCAL=false).
  const ctx = useTestApp({ redis: true, env: { CACHE_LOCAL: 'false' } })
  const admin = new Redis(sharedRedisUrl)
  let f: OrgFixture
  beforeAll(async () => { f = await ctx.org({ units: 2 }) })
  afterAll(() => { admin.disconnect() })

  const corrupt = async () => (await ctx.app.cache.metrics.errors.get()).values.find((v) => v.labels.operation === 'corrupt')?.value ?? 0
  const cases: Array<[string, () => Buffer]> = [
    ['garbage', () => Buffer.from('garbage')],
    ['gzip-looking garbage', () => Buffer.from([0x1f, 0x8b, 0x08, 0x00, 1, 2, 3, 4, 5, 6, 7])],
    ['a gzip bomb (64 MB of zeros)', () => gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 })],
    ['JSON of the wrong shape', () => Buffer.from('{"total":"lots","hacked":true}')],
    ['a sealed value with a wrong checksum', () => Buffer.concat([Buffer.from([0x63, 0x62, ENVELOPE_VERSION]), Buffer.alloc(HEADER_BYTES - 3), Buffer.from('{"total":999}')])]
  ]

  it.each(cases)('%s: counted, deleted, served from PostgreSQL (miss), then cached properly', async (_name, value) => {
    const entry: Entry = { queryType: 'units_status', orgId: f.org.id }
    const key = ctx.app.dashboard.keys.entry(entry)
    const url = `/api/orgs/${f.org.id}/dashboard/units/status`
    for (const encoding of ['gzip', 'identity']) {
      await admin.set(key, value(), 'EX', 60)
      const before = await corrupt()
      const res = await ctx.app.inject({ url, headers: { ...ctx.bearer({ [f.org.id]: 'viewer' }), 'accept-encoding': encoding } })
      expect(res.statusCode).toBe(200)
      expect(res.headers['x-cache']).toBe('miss')
      expect(res.headers['content-encoding']).toBeUndefined()
      expect(res.json()).toEqual({ total: 2, normal: 2, too_hot: 0, too_cold: 0, offline: 0 })
      expect(await corrupt()).toBe(before + 1)
      // What is stored now is coldboard's own, and the next read is a hit.
      expect(open((await admin.getBuffer(key))!)).not.toBeNull()
      expect((await ctx.app.inject({ url, headers: ctx.bearer({ [f.org.id]: 'viewer' }) })).headers['x-cache']).toBe('hit')
    }
  })

  it('a value of another format version: not served, not counted as garbage, replaced by the load', async () => {
    const key = ctx.app.dashboard.keys.entry({ queryType: 'units_status', orgId: f.org.id })
    const url = `/api/orgs/${f.org.id}/dashboard/units/status`
    await admin.set(key, Buffer.concat([Buffer.from([0x63, 0x62, ENVELOPE_VERSION + 7, 0, 0, 0, 0, 0]), Buffer.from('{"total":999}')]), 'EX', 60)
    const before = await corrupt()
    const res = await ctx.app.inject({ url, headers: ctx.bearer({ [f.org.id]: 'viewer' }) })
    expect(res.headers['x-cache']).toBe('miss')
    expect(res.json()).toEqual({ total: 2, normal: 2, too_hot: 0, too_cold: 0, offline: 0 })
    expect(await corrupt()).toBe(before)
    expect(open((await admin.getBuffer(key))!)).not.toBeNull()
  })

  it('a garbage compliance figure is not shown: recomputed and replaced', async () => {
    await admin.set(ctx.app.dashboard.keys.compliance(f.org.id), '1e9', 'EX', 60)
    await admin.del(ctx.app.dashboard.keys.entry({ queryType: 'stats', orgId: f.org.id }))
    const res = await ctx.app.inject({ url: `/api/orgs/${f.org.id}/dashboard`, headers: ctx.bearer({ [f.org.id]: 'viewer' }) })
    expect(res.statusCode).toBe(200)
    expect(res.json().compliancePercentage).toBe(100)
  })
})
