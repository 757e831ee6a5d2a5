import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { App } from '../../../src/app.js'
import { MAX_ANNOUNCED_KEYS, MAX_REMEMBERED_TARGETS, createInvalidator, type Invalidator } from '../../../src/features/cache/invalidator.js'
import { GROUP_WIDE_FIELD } from '../../../src/features/cache/store.js'
import { buildTestApp, newPrefix } from '../../helpers/fixture.js'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js'
import { startPrivateRedis, startTcpProxy, waitFor, type PrivateRedis } from '../../helpers/redis.js'

/**
 * The invalidator (src/features/cache/invalidator.ts) through its public API, over the app's cache store on a
 * private redis-server reached through a TCP proxy that can cut the connection: coalescing, listeners and the
 * channel, remembered failures (bounded per group) and their replay. Groups and keys are its own, not the
 * dashboard's: it is generic.
 */
describe('the cache invalidator', () => {
  let db: TestDatabase
  let redis: PrivateRedis
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>
  let direct: Redis
  let app: App
  let prefix: string
  const made: Invalidator[] = []
  /** The group-wide key lists asked for, by group (a group-wide run lists its keys, as the dashboard lists units). */
  const listed: string[] = []
  const groupKeys = new Map<string, string[]>()

  const fence = (g: string) => `${prefix}inv:gen:{${g}}`
  const key = (g: string, name: string | number) => `${prefix}inv:e:{${g}}:${name}`
  function invalidator (subscribe = false): Invalidator {
    const inv = createInvalidator({
      store: app.cache,
      channel: `${prefix}inv:channel`,
      subscriber: subscribe ? app.redis!.connection('cache-sub') : null,
      fenceKey: fence,
      groupKeys: async (g) => { listed.push(g); return groupKeys.get(g) ?? [] },
      log: app.log
    })
    made.push(inv)
    return inv
  }
  const store = () => app.cache
  const counter = async (c: typeof app.cache.metrics.errors, operation: string) => (await c.get()).values.find((v) => v.labels.operation === operation)?.value ?? 0
  const scriptCalls = async () => (await app.cache.metrics.latency.get()).values
    .find((v) => v.labels.operation === 'invalidate' && v.metricName === 'dashboard_cache_latency_seconds_count')?.value ?? 0

  beforeAll(async () => {
    db = await createTestDatabase()
    redis = await startPrivateRedis()
    proxy = await startTcpProxy(redis.port)
    direct = new Redis(redis.url, { retryStrategy: () => 200 })
    direct.on('error', () => {})
    prefix = newPrefix()
    app = await buildTestApp({ database: db, prefix, redis: proxy.url, env: { REDIS_COMMAND_TIMEOUT_MS: '200' } })
    await app.ready()
  })
  afterAll(async () => {
    for (const inv of made) inv.close()
    await app?.close()
    direct?.disconnect()
    await proxy?.close()
    await redis?.stop()
    await db?.drop()
  })
  beforeEach(async () => {
    proxy.restore()
    await waitFor(() => app.cache.isAvailable(), 10_000, 'cache connected')
  })

  it('coalesces a burst for one group into few script calls, each caller covered', async () => {
    const inv = invalidator()
    const g = randomUUID()
    const units = [randomUUID(), randomUUID()]
    const before = await scriptCalls()
    await Promise.all(Array.from({ length: 100 }, (_, k) => inv.invalidate(g, { fields: [`alerts_count:${units[k % 2]}`], keys: [key(g, k % 2)] })))
    const used = await scriptCalls() - before
    expect(used).toBeGreaterThanOrEqual(1)
    expect(used).toBeLessThanOrEqual(2)
    const gen = await direct.hgetall(fence(g))
    for (const u of units) expect(gen[`alerts_count:${u}`]).toBeTruthy()
    expect(inv.hasPending(g)).toBe(false)
  })

  it('a caller that arrives while a script runs resolves only after a later script has covered it', async () => {
    const inv = invalidator()
    const g = randomUUID()
    await direct.mset(key(g, 'a'), '{}', key(g, 'b'), '{}', key(g, 'c'), '{}')
    const before = await scriptCalls()
    const first = inv.invalidate(g, { fields: ['a'], keys: [key(g, 'a')] }) // its script is sent now
    const covered: Record<string, boolean> = {}
    const late = ['b', 'c'].map((name) => inv.invalidate(g, { fields: [name], keys: [key(g, name)] }).then(async () => {
      covered[name] = (await direct.hexists(fence(g), name)) === 1 && (await direct.exists(key(g, name))) === 0
    }))
    await Promise.all([first, ...late])
    expect(covered).toEqual({ b: true, c: true })
    expect(await scriptCalls() - before).toBe(2) // the first call's, then one for both late callers
  })

  it('listeners hear of an invalidation at once locally, and on another instance through the channel', async () => {
    const one = invalidator(true)
    const two = invalidator(true)
    const heardOne: Array<string | null> = []
    const heardTwo: Array<string | null> = []
    one.onInvalidated((g) => heardOne.push(g))
    two.onInvalidated((g) => heardTwo.push(g))
    // Both subscriptions are live once a message of either reaches the other.
    await waitFor(async () => { await two.invalidate('probe', { fields: [], keys: [] }); return heardOne.includes('probe') }, 10_000, 'subscriptions')
    heardOne.length = 0
    heardTwo.length = 0
    const g = randomUUID()
    const done = one.invalidate(g, { fields: ['x'], keys: [] })
    expect(heardOne).toEqual([g]) // synchronously, before any Redis round trip
    await done
    await waitFor(() => heardTwo.includes(g), 5000, 'the message on the other instance')
    expect(heardTwo.filter((x) => x === g)).toEqual([g])
    // An instance ignores its own messages: its own for g went out on the channel before this marker.
    const marker = randomUUID()
    await two.invalidate(marker, { fields: [], keys: [] })
    await waitFor(() => heardOne.includes(marker), 5000, 'the marker')
    expect(heardOne.filter((x) => x === g)).toEqual([g])
  })

  it('listeners learn which keys were deleted, here and on the other instance; group-wide or past MAX_ANNOUNCED_KEYS, the whole group', async () => {
    const one = invalidator(true)
    const two = invalidator(true)
    const heardOne: Array<[string | null, readonly string[] | null]> = []
    const heardTwo: Array<[string | null, readonly string[] | null]> = []
    one.onInvalidated((g, k) => heardOne.push([g, k]))
    two.onInvalidated((g, k) => heardTwo.push([g, k]))
    await waitFor(async () => { await two.invalidate('probe', { fields: [], keys: [] }); return heardOne.some(([g]) => g === 'probe') }, 10_000, 'subscriptions')
    const g = randomUUID()
    const many = Array.from({ length: MAX_ANNOUNCED_KEYS + 1 }, (_, i) => key(g, `many${i}`))
    groupKeys.set(g, [key(g, 'listed')])
    await one.invalidate(g, { fields: ['a'], keys: [key(g, 'a'), key(g, 'b')] })
    await one.invalidate(g, { fields: ['c'], keys: [key(g, 'c')], groupWide: true })
    await one.invalidate(g, { fields: ['m'], keys: many })
    const expected: Array<[string, readonly string[] | null]> = [[g, [key(g, 'a'), key(g, 'b')]], [g, null], [g, null]]
    expect(heardOne.filter(([x]) => x === g)).toEqual(expected)
    await waitFor(() => heardTwo.filter(([x]) => x === g).length === 3, 5000, 'the three messages on the other instance')
    expect(heardTwo.filter(([x]) => x === g)).toEqual(expected)
    // A message without keys (an older version's) covers the whole group.
    await direct.publish(`${prefix}inv:channel`, JSON.stringify({ group: 'old', origin: 'another version' }))
    await waitFor(() => heardTwo.some(([x]) => x === 'old'), 5000, 'the old message')
    expect(heardTwo.find(([x]) => x === 'old')).toEqual(['old', null])
  })

  it('an invalidation resolves only once Redis has run its publication: what is published after it arrives behind it', async () => {
    // The write path emits when the invalidation resolves; the in-process copies of other instances rely on hearing
    // the invalidation before the event (docs/caching.md#in-process). A 60 ms link each way to this instance's Redis
    // would let a publication sent without waiting arrive after a message published directly once the call resolved.
    const inv = invalidator()
    const listener = new Redis(redis.url)
    const publisher = new Redis(redis.url)
    const heard: string[] = []
    try {
      listener.on('message', (_channel: string, message: string) => heard.push(message))
      await listener.subscribe(`${prefix}inv:channel`)
      const g = randomUUID()
      proxy.setDelay(60)
      await inv.invalidate(g, { fields: ['x'], keys: [] })
      proxy.setDelay(0)
      await publisher.publish(`${prefix}inv:channel`, 'after')
      await waitFor(() => heard.includes('after'), 5000, 'the marker')
      expect(heard.map((m) => m === 'after' ? m : (JSON.parse(m) as { group: string }).group)).toEqual([g, 'after'])
    } finally {
      proxy.setDelay(0)
      listener.disconnect()
      publisher.disconnect()
    }
  })

  it('an invalidation that Redis cannot run is remembered, the group is pending until it is replayed, and nobody waits or fails', async () => {
    const inv = invalidator()
    const g = randomUUID()
    const bystander = randomUUID()
    await direct.mset(key(g, 1), '{}', key(g, 2), '{}')
    proxy.cut()
    await waitFor(() => !app.cache.isAvailable(), 5000, 'cut noticed')
    // The store itself cannot answer and sends nothing; its invalidate throws for the invalidator to remember.
    expect(await store().get(key(g, 1))).toBeUndefined()
    expect(await store().readFence(fence(g), 'x')).toBeNull()
    await expect(store().invalidate(fence(g), ['x'], [key(g, 1)])).rejects.toThrow()

    const errors = await counter(app.cache.metrics.errors, 'invalidate')
    await inv.invalidate(g, { fields: ['one'], keys: [key(g, 1)] })
    await inv.invalidate(g, { fields: ['two'], keys: [key(g, 2)] })
    expect(await counter(app.cache.metrics.errors, 'invalidate')).toBe(errors + 2)
    expect(inv.hasPending(g)).toBe(true)
    expect(inv.hasPending(bystander)).toBe(false)
    expect(inv.pendingCount()).toBe(1)
    expect((await app.cache.metrics.pendingInvalidations.get()).values[0]?.value).toBe(1)
    expect(await direct.exists(key(g, 1), key(g, 2))).toBe(2) // Redis kept them all along

    proxy.restore()
    // Replayed by the invalidator's own retry, without being asked.
    await waitFor(() => !inv.hasPending(g), 10_000, 'replayed')
    expect(await direct.exists(key(g, 1), key(g, 2))).toBe(0)
    const gen = await direct.hgetall(fence(g))
    expect(Object.keys(gen).sort()).toEqual(['one', 'two'])
    expect((await app.cache.metrics.pendingInvalidations.get()).values[0]?.value).toBe(0)
  })

  it('a script that fails in flight (the connection drops before its reply) is remembered and replayed', async () => {
    const inv = invalidator()
    const g = randomUUID()
    await direct.set(key(g, 'inflight'), '{}')
    expect(app.cache.isAvailable()).toBe(true)
    const done = inv.invalidate(g, { fields: ['inflight'], keys: [key(g, 'inflight')] })
    proxy.cut() // the script was accepted while the connection was ready; its reply never comes
    await done
    expect(inv.hasPending(g)).toBe(true)
    proxy.restore()
    await waitFor(() => !inv.hasPending(g), 10_000, 'replayed')
    expect(await direct.exists(key(g, 'inflight'))).toBe(0)
    expect(await direct.hexists(fence(g), 'inflight')).toBe(1)
  })

  it(`remembered failures stay bounded: past ${MAX_REMEMBERED_TARGETS} fields and keys a group is remembered as one group-wide entry, replayed once Redis is back`, async () => {
    const inv = invalidator()
    const wide = randomUUID()
    const narrow = randomUUID()
    // Each call names one field and one key: `wide` goes well past the bound, `narrow` stays exactly at it.
    const wideCalls = MAX_REMEMBERED_TARGETS
    const narrowCalls = MAX_REMEMBERED_TARGETS / 2
    const wideKeys = Array.from({ length: wideCalls }, (_, i) => key(wide, i))
    const narrowKeys = Array.from({ length: narrowCalls }, (_, i) => key(narrow, i))
    // What a group-wide run deletes: every key of the group, including one no failed call named.
    groupKeys.set(wide, [...wideKeys, key(wide, 'unnamed')])
    groupKeys.set(narrow, [...narrowKeys, key(narrow, 'unnamed')])
    await direct.mset(...[...wideKeys, key(wide, 'unnamed'), ...narrowKeys, key(narrow, 'unnamed')].flatMap((k) => [k, '{}']))

    proxy.cut()
    await waitFor(() => !app.cache.isAvailable(), 5000, 'cut noticed')
    for (let i = 0; i < wideCalls; i++) await inv.invalidate(wide, { fields: [`f${i}`], keys: [wideKeys[i]!] })
    for (let i = 0; i < narrowCalls; i++) await inv.invalidate(narrow, { fields: [`f${i}`], keys: [narrowKeys[i]!] })
    expect(inv.pendingCount()).toBe(2) // one remembered entry per group, however many calls failed
    expect(inv.hasPending(wide) && inv.hasPending(narrow)).toBe(true)
    expect(listed).not.toContain(wide) // nothing is listed while Redis is away

    proxy.restore()
    await waitFor(() => inv.pendingCount() === 0, 10_000, 'replayed')
    // `wide` was replayed group-wide: the `*` token moved, no per-call field was kept, every key of the group
    // is gone (even the one no call named), listed once from the group.
    expect(Object.keys(await direct.hgetall(fence(wide)))).toEqual([GROUP_WIDE_FIELD])
    expect(listed.filter((g) => g === wide).length).toBeGreaterThanOrEqual(1)
    expect(await direct.exists(...wideKeys, key(wide, 'unnamed'))).toBe(0)
    // `narrow`, at the bound, was replayed exactly as called: its fields and keys, nothing group-wide.
    const narrowFields = Object.keys(await direct.hgetall(fence(narrow)))
    expect(narrowFields.sort()).toEqual(Array.from({ length: narrowCalls }, (_, i) => `f${i}`).sort())
    expect(listed).not.toContain(narrow)
    expect(await direct.exists(...narrowKeys)).toBe(0)
    expect(await direct.exists(key(narrow, 'unnamed'))).toBe(1)
  })
})
