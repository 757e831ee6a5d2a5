import { randomUUID } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GROUP_WIDE_FIELD, MAX_KEYS_PER_CALL, fenceTtlSeconds } from '../../../src/features/cache/store.js'
import { useTestApp } from '../../helpers/fixture.js'
import { monitorCommands, sharedRedisUrl, waitFor } from '../../helpers/redis.js'

/**
 * The generic cache store (src/features/cache/store.ts) through its public API, on the shared Redis: values
 * with a TTL, fenced writes, group invalidations in bounded script calls, the SCAN purge, publish and health.
 * It knows nothing of dashboards, so these keys are its own (behind this file's prefix).
 */
describe('the cache store on a real Redis', () => {
  const ctx = useTestApp({ redis: true })
  let admin: Redis
  const store = () => ctx.app.cache
  const group = randomUUID()
  const other = randomUUID()
  const fence = (g: string) => `${ctx.prefix}t:gen:{${g}}`
  const entry = (g: string, name: string) => `${ctx.prefix}t:e:{${g}}:${name}`

  beforeAll(async () => {
    admin = new Redis(sharedRedisUrl)
    await waitFor(() => admin.status === 'ready', 5000, 'admin connection')
  })
  afterAll(async () => {
    await store().invalidatePattern(`${ctx.prefix}t:*`)
    admin?.disconnect()
  })

  it('round-trips text and bytes with the configured TTL on every key', async () => {
    const key = entry(group, 'json')
    expect(await store().set(key, '{"a":1,"nested":{"b":[1,2]}}')).toBe(true)
    const got = await store().get(key)
    expect(Buffer.isBuffer(got)).toBe(true)
    expect(JSON.parse(got!.toString())).toEqual({ a: 1, nested: { b: [1, 2] } })
    const ttl = await admin.ttl(key)
    expect(store().ttlSeconds).toBe(60)
    expect(ttl).toBeGreaterThan(55)
    expect(ttl).toBeLessThanOrEqual(60)

    const bytes = gzipSync('{"points":[]}')
    const binary = entry(group, 'gzip')
    expect(await store().set(binary, bytes)).toBe(true)
    expect((await store().get(binary))!.equals(bytes)).toBe(true)
    expect(await admin.ttl(binary)).toBeGreaterThan(55)

    await store().delete(key)
    expect(await store().get(key)).toBeNull()
  })

  it('expires a key with a short TTL', async () => {
    const key = entry(group, 'short')
    await store().set(key, '{"total":1}', 1)
    expect((await store().get(key))!.toString()).toBe('{"total":1}')
    await waitFor(async () => (await admin.exists(key)) === 0, 5000, 'expiry')
    expect(await store().get(key)).toBeNull()
  })

  it('a fenced set is refused once its field, or the whole group, was invalidated after the fence was read', async () => {
    const key = entry(group, 'fenced')
    const stale = await store().readFence(fence(group), 'alerts_count:u1')
    expect(stale).toMatchObject({ hashKey: fence(group), field: 'alerts_count:u1' })
    await store().invalidate(fence(group), ['alerts_count:u1'], [key])
    expect(await store().setFenced(stale!, key, '{"stale":true}')).toBe('fenced')
    expect(await admin.exists(key)).toBe(0)

    const fresh = await store().readFence(fence(group), 'alerts_count:u1')
    expect(await store().setFenced(fresh!, key, '{"fresh":true}')).toBe('stored')
    expect(await admin.get(key)).toBe('{"fresh":true}')
    expect(await admin.ttl(key)).toBeGreaterThan(55)

    // Another field of the group does not fence it; the group-wide field does.
    const before = await store().readFence(fence(group), 'alerts_count:u1')
    await store().invalidate(fence(group), ['alerts_count:u2'], [])
    expect(await store().setFenced(before!, key, '{"still":"fresh"}')).toBe('stored')
    await store().invalidate(fence(group), [GROUP_WIDE_FIELD], [])
    expect(await store().setFenced(before!, key, '{"stale":"again"}')).toBe('fenced')
    expect(await admin.get(key)).toBe('{"still":"fresh"}')
    // The fence hash lives for max(10 min, 10 TTLs), renewed by each invalidation.
    expect(await admin.ttl(fence(group))).toBeGreaterThan(fenceTtlSeconds(60) - 5)
  })

  it('a group invalidation deletes exactly the keys it is given, in script calls of at most MAX_KEYS_PER_CALL keys, the fence moving first', async () => {
    const n = 2 * MAX_KEYS_PER_CALL + 234
    const mine = Array.from({ length: n }, (_, i) => entry(group, `many:${i}`))
    const spared = entry(group, 'spared')
    const theirs = entry(other, 'many:0')
    await admin.mset(...[...mine, spared, theirs].flatMap((k) => [k, '{}']))
    await store().invalidate(fence(group), ['warm-up'], []) // the script is loaded before MONITOR starts

    const calls: string[][] = []
    const monitor = await monitorCommands(sharedRedisUrl, (args) => {
      if (/^eval(sha)?$/i.test(args[0] ?? '') && args[3] === fence(group)) calls.push(args)
    })
    try {
      const before = await admin.hget(fence(group), 'many')
      await store().invalidate(fence(group), ['many'], mine)
      await waitFor(() => calls.reduce((sum, c) => sum + Number(c[2]) - 1, 0) >= n, 5000, 'the script calls seen by MONITOR')
      expect(calls).toHaveLength(Math.ceil(n / MAX_KEYS_PER_CALL))
      for (const c of calls) expect(Number(c[2]) - 1).toBeLessThanOrEqual(MAX_KEYS_PER_CALL)
      // Only the first call moves the fence field (ARGV: token, ttl, channel, message, fields…); nothing to announce.
      expect(calls[0]!.slice(3 + Number(calls[0]![2]) + 4)).toEqual(['many'])
      for (const c of calls.slice(1)) expect(c.slice(3 + Number(c[2]) + 4)).toEqual([])
      for (const c of calls) expect(c.slice(3 + Number(c[2]) + 2, 3 + Number(c[2]) + 4)).toEqual(['', ''])
      expect(await admin.hget(fence(group), 'many')).not.toBe(before)
    } finally {
      monitor.stop()
    }
    expect(await admin.exists(...mine)).toBe(0)
    expect(await admin.exists(spared, theirs)).toBe(2)
  })

  it('invalidatePattern purges one group\'s keys with SCAN and leaves another\'s, the fences it is told to keep and the queue', async () => {
    const g = randomUUID() // a group of its own: the other tests leave keys in theirs
    const mine = [entry(g, 'p1'), entry(g, 'p2')]
    const theirs = entry(other, 'p1')
    const queueKey = `${ctx.app.config.queuePrefix}:probe:${g}`
    for (const k of [...mine, theirs, queueKey]) await admin.set(k, '{}', 'EX', 60)
    await store().invalidate(fence(g), ['p'], []) // the fence hash exists
    const keepFences = (k: string) => k.startsWith(`${ctx.prefix}t:gen:`)
    expect(await store().invalidatePattern(`${ctx.prefix}t:*:{${g}}*`, keepFences)).toBe(2)
    expect(await admin.exists(...mine)).toBe(0)
    expect(await admin.exists(theirs)).toBe(1)
    expect(await admin.exists(fence(g))).toBe(1)
    expect(await admin.exists(queueKey)).toBe(1)

    // The dashboard's own purge pattern stays inside its keys: it never reaches the queue's (behind the same
    // prefix), and with its `isFence` it never resets a fence.
    const keys = ctx.app.dashboard.keys
    const org = randomUUID()
    const dashboardEntry = keys.entry({ queryType: 'stats', orgId: org })
    await admin.set(dashboardEntry, '{}', 'EX', 60)
    await admin.hset(keys.fence(org), 'stats', 'token')
    await admin.expire(keys.fence(org), 60)
    expect(await store().invalidatePattern(keys.pattern, keys.isFence)).toBeGreaterThanOrEqual(1)
    expect(await admin.exists(dashboardEntry)).toBe(0)
    expect(await admin.exists(keys.fence(org), queueKey, theirs)).toBe(3)
    await admin.unlink(queueKey, keys.fence(org))
  })

  it('an invalidation announces itself on a channel, once the entries are gone', async () => {
    const channel = `${ctx.prefix}t:channel`
    const entry = `${ctx.prefix}t:{g}:entry`
    const sub = new Redis(sharedRedisUrl)
    const checker = new Redis(sharedRedisUrl)
    try {
      const got: Array<{ message: string, existed: number }> = []
      sub.on('message', (c: string, m: string) => {
        if (c !== channel) return
        // Checked on arrival: the entry was deleted before the announcement went out.
        void checker.exists(entry).then((existed) => got.push({ message: m, existed }))
      })
      await sub.subscribe(channel)
      await admin.set(entry, 'v', 'EX', 60)
      const survivors = await store().invalidate(`${ctx.prefix}t:{g}:fence`, ['x'], [entry], { channel, message: 'hello' })
      expect([...survivors.keys()]).toEqual([entry])
      await waitFor(() => got.length === 1, 5000, 'the message')
      expect(got).toEqual([{ message: 'hello', existed: 0 }])
    } finally {
      sub.disconnect()
      checker.disconnect()
      await admin.unlink(`${ctx.prefix}t:{g}:fence`)
    }
  })

  it('reports health with latency', async () => {
    const h = await store().healthCheck()
    expect(h.ok).toBe(true)
    expect(h.latencyMs).toBeGreaterThanOrEqual(0)
    expect(store().isEnabled()).toBe(true)
    expect(store().isAvailable()).toBe(true)
  })
})
