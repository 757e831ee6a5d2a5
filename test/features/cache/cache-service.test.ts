import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMetrics } from '../../../src/infra/metrics.js'
import { createCacheService } from '../../../src/features/cache/cache-service.js'
import { dashboardKey, generationKey, scopeField } from '../../../src/features/cache/keys.js'
import { sharedRedisUrl, waitFor } from '../../helpers/redis.js'

describe('CacheService on a real Redis', () => {
  let redis: Redis
  let admin: Redis
  const metrics = createMetrics()
  let cache: ReturnType<typeof createCacheService>
  const org = randomUUID()
  const other = randomUUID()

  beforeAll(async () => {
    redis = new Redis(sharedRedisUrl)
    admin = new Redis(sharedRedisUrl)
    await waitFor(() => redis.status === 'ready')
    cache = createCacheService({ redis, ttlSeconds: 60, metrics, log: pino({ level: 'silent' }) })
  })
  afterAll(async () => {
    for (const o of [org, other]) {
      await cache.invalidatePattern(`dashboard:*:org:${o}*`)
      await admin.unlink(generationKey(o))
    }
    redis.disconnect(); admin.disconnect()
  })

  it('builds SPEC key names and refuses a key without an organization id', () => {
    const unit = randomUUID()
    expect(dashboardKey({ queryType: 'units_status', orgId: org })).toBe(`dashboard:units:status:org:${org}`)
    expect(dashboardKey({ queryType: 'alerts_count', orgId: org, unitId: unit })).toBe(`dashboard:alerts:count:org:${org}:unit:${unit}`)
    expect(dashboardKey({ queryType: 'temperature_trends', orgId: org, unitId: unit })).toBe(`dashboard:temperature:trends:org:${org}:unit:${unit}`)
    expect(dashboardKey({ queryType: 'devices_online', orgId: org })).toBe(`dashboard:devices:online:org:${org}`)
    expect(dashboardKey({ queryType: 'stats', orgId: org })).toBe(`dashboard:stats:org:${org}`)
    expect(() => dashboardKey({ queryType: 'stats', orgId: '' })).toThrow(/organization id/)
    expect(() => dashboardKey({ queryType: 'stats', orgId: 'undefined' })).toThrow(/organization id/)
    expect(() => dashboardKey({ queryType: 'temperature_trends', orgId: org })).toThrow(/unit id/)
  })

  it('round-trips JSON with the configured TTL on every key', async () => {
    const key = dashboardKey({ queryType: 'stats', orgId: org })
    await cache.set(key, { a: 1, nested: { b: [1, 2] } })
    expect(await cache.get(key)).toEqual({ a: 1, nested: { b: [1, 2] } })
    const ttl = await admin.ttl(key)
    expect(ttl).toBeGreaterThan(55)
    expect(ttl).toBeLessThanOrEqual(60)
    await cache.delete(key)
    expect(await cache.get(key)).toBeNull()
  })

  it('expires a key with a short TTL', async () => {
    const key = dashboardKey({ queryType: 'units_status', orgId: org })
    await cache.set(key, { total: 1 }, 1)
    expect(await cache.get(key)).toEqual({ total: 1 })
    await waitFor(async () => (await admin.exists(key)) === 0, 5000, 'expiry')
    expect(await cache.get(key)).toBeNull()
  })

  it('treats a corrupted value as a miss, counts and deletes it', async () => {
    const key = dashboardKey({ queryType: 'devices_online', orgId: org })
    await admin.set(key, 'not json {', 'EX', 60)
    const before = (await metrics.cacheError.get()).values.find((v) => v.labels.operation === 'corrupt')?.value ?? 0
    expect(await cache.get(key)).toBeNull()
    const after = (await metrics.cacheError.get()).values.find((v) => v.labels.operation === 'corrupt')?.value ?? 0
    expect(after).toBe(before + 1)
    expect(await admin.exists(key)).toBe(0)
  })

  it('invalidatePattern deletes one organization\'s keys with SCAN and leaves another\'s and the fences', async () => {
    const unit = randomUUID()
    const mine = [
      dashboardKey({ queryType: 'stats', orgId: org }),
      dashboardKey({ queryType: 'temperature_trends', orgId: org, unitId: unit })
    ]
    const theirs = dashboardKey({ queryType: 'stats', orgId: other })
    for (const k of [...mine, theirs]) await cache.set(k, { k })
    await cache.invalidateEntries(org, [{ queryType: 'units_status', orgId: org }]) // creates the fence hash
    expect(await cache.invalidatePattern(`dashboard:*:org:${org}*`)).toBe(2)
    expect(await admin.exists(...mine)).toBe(0)
    expect(await admin.exists(theirs)).toBe(1)
    expect(await admin.exists(generationKey(org))).toBe(1)
    await expect(cache.invalidatePattern('bull:*')).rejects.toThrow(/dashboard/)
  })

  it('a fenced set is refused once the entry was invalidated after its fence was read', async () => {
    const entry = { queryType: 'alerts_count' as const, orgId: org, unitId: randomUUID() }
    const fence = await cache.readFence(entry)
    expect(fence?.field).toBe(scopeField(entry))
    await cache.invalidateEntries(org, [entry])
    expect(await cache.setFenced(entry, '{"stale":true}', fence!)).toBe('fenced')
    expect(await admin.exists(dashboardKey(entry))).toBe(0)
    const fresh = await cache.readFence(entry)
    expect(await cache.setFenced(entry, '{"fresh":true}', fresh!)).toBe('stored')
    expect(await admin.get(dashboardKey(entry))).toBe('{"fresh":true}')
    expect(await admin.ttl(dashboardKey(entry))).toBeGreaterThan(55)
  })

  it('an organization-wide invalidation removes every per-unit key of that organization only', async () => {
    const units = [randomUUID(), randomUUID(), randomUUID()]
    const otherEntry = { queryType: 'temperature_trends' as const, orgId: other, unitId: randomUUID() }
    for (const e of [...units.map((unitId) => ({ queryType: 'temperature_trends' as const, orgId: org, unitId })), otherEntry]) {
      const f = await cache.readFence(e)
      expect(await cache.setFenced(e, '{"p":[]}', f!)).toBe('stored')
    }
    await cache.invalidateEntries(org, [], true)
    for (const unitId of units) expect(await admin.exists(dashboardKey({ queryType: 'temperature_trends', orgId: org, unitId }))).toBe(0)
    expect(await admin.exists(dashboardKey(otherEntry))).toBe(1)
  })

  it('reports health with latency', async () => {
    const h = await cache.healthCheck()
    expect(h.ok).toBe(true)
    expect(h.latencyMs).toBeGreaterThanOrEqual(0)
    expect(cache.isEnabled()).toBe(true)
  })
})
