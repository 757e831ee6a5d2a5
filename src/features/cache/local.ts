/** An entry as the in-process cache keeps it: the bytes a hit sends, and when its Redis copy expires. */
export interface LocalEntry { body: string | Buffer, gzip: boolean, expiresAt: number }

/** An answer with this little of its TTL left is not worth keeping. */
export const MIN_KEEP_MS = 1000

/**
 * In-process copies of Redis entries, by group (an organization), in front of the Redis GET
 * (docs/caching.md#in-process). It is only as fresh as the invalidations it hears, so it is used only under these
 * rules, which the read-through follows:
 * - an invalidation, local or heard on the channel, drops the copies of the keys it deleted in Redis (of the whole
 *   group when it was group-wide, or did not say) before anything else happens to it (`drop`): a copy of another key
 *   is still what Redis holds; losing the channel (`listening` false) drops everything and turns the layer off until
 *   it is back;
 * - a copy is kept only from a GET that Redis ran after the read began (the store's guarantee) and during which no
 *   invalidation was heard (`epoch` before the GET, `put` compares): a GET answered with a value that an
 *   invalidation has since deleted never lands here;
 * - a copy is served until its Redis entry expires, never after: it is never older than what Redis would answer.
 *   Only an answer with more than MIN_KEEP_MS left is kept. Noticing a reload ahead of expiry that stored a newer
 *   value in Redis is the read-through's business (it checks Redis once when a copy enters its reload window).
 * Bounded by `maxBytes` of entry bodies: past it, the groups stored longest ago are dropped whole.
 */
export function createLocalCache (opts: {
  maxBytes: number
  /** Whether every invalidation is being heard now (the invalidation channel's subscription). */
  listening: () => boolean
}) {
  const groups = new Map<string, Map<string, LocalEntry>>()
  let bytes = 0
  let entries = 0
  let epoch = 0
  let wasListening = false

  const sizeOf = (e: LocalEntry) => e.body.length + 64

  function remove (g: Map<string, LocalEntry>, key: string, e: LocalEntry): void {
    g.delete(key)
    bytes -= sizeOf(e)
    entries--
  }

  /** Removes the copies of `keys` in `group` (the group too, once empty). */
  function removeKeys (group: string, keys: Iterable<string>): void {
    const g = groups.get(group)
    if (!g) return
    for (const key of keys) {
      const e = g.get(key)
      if (e) remove(g, key, e)
    }
    if (g.size === 0) groups.delete(group)
  }

  function dropGroup (group: string): void {
    const g = groups.get(group)
    if (!g) return
    for (const e of g.values()) bytes -= sizeOf(e)
    entries -= g.size
    groups.delete(group)
  }

  function clear (): void {
    groups.clear()
    bytes = 0
    entries = 0
  }

  /** Whether the layer may be used now; drops everything when the channel was lost since the last call. */
  function usable (): boolean {
    const now = opts.listening()
    if (now !== wasListening) {
      wasListening = now
      epoch++
      clear()
    }
    return now
  }

  return {
    /** The copy of `key`, when there is one whose Redis entry has not expired and the channel is heard. */
    get (group: string, key: string, now = Date.now()): LocalEntry | undefined {
      if (!usable()) return undefined
      const g = groups.get(group)
      const e = g?.get(key)
      if (e === undefined) return undefined
      if (e.expiresAt > now) return e
      removeKeys(group, [key])
      return undefined
    },

    /** Taken before a GET whose answer may be kept; null while the layer is off. */
    epoch: (): number | null => usable() ? epoch : null,

    /**
     * Keeps a copy of the answer of a GET that began at `since` (epoch()), unless an invalidation was heard meanwhile.
     * A Buffer body is copied, only once it is kept: the GET's buffer may be a slice of a larger socket read.
     */
    put (group: string, key: string, answer: LocalEntry, since: number | null, now = Date.now()): boolean {
      if (since === null || !usable() || since !== epoch || answer.expiresAt - now <= MIN_KEEP_MS) return false
      const size = sizeOf(answer)
      if (size > opts.maxBytes) return false
      const e: LocalEntry = { body: typeof answer.body === 'string' ? answer.body : Buffer.from(answer.body), gzip: answer.gzip, expiresAt: answer.expiresAt }
      let g = groups.get(group)
      if (!g) groups.set(group, g = new Map())
      const old = g.get(key)
      if (old) remove(g, key, old)
      g.set(key, e)
      bytes += size
      entries++
      // Oldest groups first (Map order is insertion order; a dropped group comes back last).
      for (const oldest of groups.keys()) {
        if (bytes <= opts.maxBytes) break
        if (oldest !== group) dropGroup(oldest)
      }
      if (bytes > opts.maxBytes) { dropGroup(group); return false }
      return true
    },

    /**
     * Redis holds something else under `key` than the copy (a value this instance stored but could not keep, or
     * nothing): the copy goes, and GETs in flight are not kept.
     */
    forget (group: string, key: string): void {
      epoch++
      removeKeys(group, [key])
    },

    /**
     * An invalidation heard now: of `keys` in `group`, of the whole group when `keys` is null, of everything when
     * `group` is null (e.g. the channel was lost). GETs in flight, of any key, are not kept.
     */
    drop (group: string | null, keys: readonly string[] | null = null): void {
      epoch++
      if (group === null) { clear(); return }
      if (keys === null) dropGroup(group)
      else removeKeys(group, keys)
    },

    /** What it holds now, and whether it is in use (the channel heard). */
    stats: () => ({ listening: usable(), groups: groups.size, entries, bytes })
  }
}
export type LocalCache = ReturnType<typeof createLocalCache>
