import { describe, expect, it } from 'vitest'
import { createLocalCache } from '../../../src/features/cache/local.js'

/**
 * The in-process copies' own rules (src/features/cache/local.ts), on the data structure itself: what the read-through
 * relies on to keep them no staler than Redis (docs/caching.md#in-process). The end-to-end proof is
 * test/integration/freshness.test.ts and test/integration/local-cache.test.ts.
 */
describe('in-process copies', () => {
  const now = 1_000_000
  const entry = (body: string, leftMs = 60_000) => ({ body, gzip: false, expiresAt: now + leftMs })
  function make (maxBytes = 1 << 20) {
    const state = { listening: true }
    const local = createLocalCache({ maxBytes, listening: () => state.listening })
    return { local, state }
  }

  it('keeps the answer of a GET during which nothing was invalidated, and serves it until its Redis entry expires, never after', () => {
    const { local } = make()
    const since = local.epoch()
    expect(local.put('o1', 'k', entry('v1'), since, now)).toBe(true)
    expect(local.get('o1', 'k', now)?.body).toBe('v1')
    // The reload window (the last quarter) included: noticing a reload there is the read-through's business.
    expect(local.get('o1', 'k', now + 59_999)?.body).toBe('v1')
    // Expired in Redis: not served, and forgotten here.
    expect(local.get('o1', 'k', now + 60_000)).toBeUndefined()
    expect(local.get('o1', 'k', now)).toBeUndefined()
    // Nothing of it is left behind: not its bytes, and not an empty group per organization ever read.
    expect(local.stats()).toEqual({ listening: true, groups: 0, entries: 0, bytes: 0 })
    // An answer with a second or less left is not kept at all.
    expect(local.put('o1', 'k', entry('v2', 1000), local.epoch(), now)).toBe(false)
    expect(local.put('o1', 'k', entry('v2', 15_000), local.epoch(), now)).toBe(true)
  })

  it("keeps its own copy of a Buffer answer, not the GET's buffer (which may be a slice of a socket read)", () => {
    const { local } = make()
    const socketRead = Buffer.from('header{"total":2}')
    expect(local.put('o1', 'k', { body: socketRead.subarray(6), gzip: false, expiresAt: now + 60_000 }, local.epoch(), now)).toBe(true)
    socketRead.fill(0)
    expect(local.get('o1', 'k', now)?.body.toString()).toBe('{"total":2}')
  })

  it('never keeps the answer of a GET during which an invalidation was heard, for any group', () => {
    const { local } = make()
    const since = local.epoch()
    local.drop('another-org')
    expect(local.put('o1', 'k', entry('old'), since, now)).toBe(false)
    expect(local.get('o1', 'k', now)).toBeUndefined()
    const since2 = local.epoch()
    local.forget('o1', 'k2')
    expect(local.put('o1', 'k', entry('old'), since2, now)).toBe(false)
  })

  it("an invalidation drops the group's copies, and only them", () => {
    const { local } = make()
    local.put('o1', 'a', entry('a'), local.epoch(), now)
    local.put('o1', 'b', entry('b'), local.epoch(), now)
    local.put('o2', 'c', entry('c'), local.epoch(), now)
    local.drop('o1')
    expect(local.get('o1', 'a', now)).toBeUndefined()
    expect(local.get('o1', 'b', now)).toBeUndefined()
    expect(local.get('o2', 'c', now)?.body).toBe('c')
    expect(local.stats()).toMatchObject({ groups: 1, entries: 1 })
    local.drop(null)
    expect(local.stats()).toMatchObject({ groups: 0, entries: 0, bytes: 0 })
  })

  it("an invalidation that names its keys drops their copies and keeps the group's others; a GET in flight is still not kept", () => {
    const { local } = make()
    local.put('o1', 'a', entry('a'), local.epoch(), now)
    local.put('o1', 'b', entry('b'), local.epoch(), now)
    local.put('o2', 'a', entry('other org'), local.epoch(), now)
    const since = local.epoch()
    local.drop('o1', ['a', 'not-held'])
    expect(local.get('o1', 'a', now)).toBeUndefined()
    expect(local.get('o1', 'b', now)?.body).toBe('b')
    expect(local.get('o2', 'a', now)?.body).toBe('other org')
    expect(local.put('o1', 'c', entry('c'), since, now)).toBe(false)
    expect(local.stats()).toMatchObject({ groups: 2, entries: 2 })
    local.drop('o1', ['b'])
    expect(local.stats()).toMatchObject({ groups: 1, entries: 1, bytes: 'other org'.length + 64 })
  })

  it('off while the channel is not heard: nothing served or kept, everything dropped, and a GET begun before is not kept after', () => {
    const { local, state } = make()
    local.put('o1', 'a', entry('a'), local.epoch(), now)
    const since = local.epoch()
    state.listening = false
    expect(local.get('o1', 'a', now)).toBeUndefined()
    expect(local.epoch()).toBeNull()
    expect(local.put('o1', 'a', entry('a'), null, now)).toBe(false)
    state.listening = true
    // Back: what it held before is gone, and the GET that began before the loss is not kept.
    expect(local.get('o1', 'a', now)).toBeUndefined()
    expect(local.put('o1', 'a', entry('a'), since, now)).toBe(false)
    expect(local.put('o1', 'a', entry('a'), local.epoch(), now)).toBe(true)
    expect(local.get('o1', 'a', now)?.body).toBe('a')
  })

  it('bounded: past maxBytes the groups stored longest ago go first; an entry larger than the bound is not kept', () => {
    const { local } = make(1000)
    const body = 'x'.repeat(200) // 264 bytes with the per-entry overhead
    local.put('o1', 'a', entry(body), local.epoch(), now)
    local.put('o2', 'b', entry(body), local.epoch(), now)
    local.put('o3', 'c', entry(body), local.epoch(), now)
    expect(local.stats()).toMatchObject({ groups: 3, entries: 3, bytes: 792 })
    local.put('o4', 'd', entry(body), local.epoch(), now)
    expect(local.get('o1', 'a', now)).toBeUndefined()
    expect(local.get('o4', 'd', now)?.body).toBe(body)
    expect(local.stats()).toMatchObject({ groups: 3, entries: 3, bytes: 792 })
    expect(local.put('o5', 'e', entry('y'.repeat(2000)), local.epoch(), now)).toBe(false)
    // Replacing a copy counts its size once.
    local.put('o4', 'd', entry(body), local.epoch(), now)
    expect(local.stats().bytes).toBe(792)
  })
})
