import { isCluster, type RedisClient } from '../../infra/redis.js'
import { clusterSlot } from '../../lib/cluster-slot.js'

/**
 * Where a failover can be seen: `slots`, a Redis Cluster (the primary that owns each slot); `address`, one server
 * or a primary found through Sentinel (the address the connection reached: a Sentinel failover, or a managed
 * Redis whose endpoint name moves to its replica); `none`, never (no Redis).
 */
export type FailoverWatch = 'slots' | 'address' | 'none'

export interface FailoverFence {
  /**
   * `key`'s primary, as `via` would route a command for it now, is the one this instance trusts, and entries may
   * be read and written there now. Starts the fence when it finds another primary.
   */
  allows (key: string, via: RedisClient): boolean
}

/**
 * The failover fence (docs/scaling.md). A promoted replica may lack invalidations its old primary acknowledged
 * (asynchronous replication) or never ran (it was unreachable, and the instance that failed to run them emitted
 * its events anyway and replays them only once it reaches the new primary itself). So an instance trusts the
 * primary it first sees for each slot (for the whole server behind Sentinel); when a read or write finds another
 * primary there, it uses no entry of that slot for `fenceMs` (CACHE_TTL_SECONDS): no read, no write, dashboards
 * from PostgreSQL. Every entry the new primary inherited was written before the failover, so all of them have
 * expired by the time the fence lifts, and nothing was written meanwhile by an instance that saw the change.
 * The check runs before each command is sent, on the routing the connection is about to use. Writes go over a
 * connection that follows no redirection, so they never land on a primary that was not checked; reads may follow
 * one (MOVED updates the slot map first, ASK reads a copy of the same key) and are checked again on their reply.
 */
export function createFailoverFence (opts: {
  watch: FailoverWatch
  fenceMs: number
  now?: () => number
  /** A new primary was found where another was trusted (once per slot on a cluster). */
  onFenced?: (from: string, to: string) => void
}): FailoverFence {
  const { fenceMs } = opts
  const now = opts.now ?? (() => performance.now())
  if (opts.watch === 'none') return { allows: () => true }

  if (opts.watch === 'slots') {
    const trusted: Array<string | undefined> = new Array(16384)
    const fencedUntil = new Float64Array(16384)
    return {
      allows (key: string, via: RedisClient): boolean {
        if (!isCluster(via)) throw new Error('slot watching needs a cluster connection')
        const slot = clusterSlot(key)
        const owner = via.slots[slot]?.[0]
        // No known primary for the slot: the command would fail anyway.
        if (owner === undefined) return false
        const before = trusted[slot]
        if (before !== owner) {
          trusted[slot] = owner
          if (before !== undefined) {
            fencedUntil[slot] = now() + fenceMs
            opts.onFenced?.(before, owner)
          }
        }
        const until = fencedUntil[slot]!
        return until === 0 || until <= now()
      }
    }
  }

  let trusted: string | undefined
  let checked: unknown = null
  let fencedUntil = 0
  return {
    allows (_key: string, via: RedisClient): boolean {
      if (isCluster(via)) throw new Error('address watching needs a single-server connection')
      const stream = via.stream as { remoteAddress?: string, remotePort?: number } | undefined
      // The address is looked at once per connection (ioredis makes a new socket on every reconnection).
      if (stream !== checked) {
        if (!stream?.remoteAddress) return false
        checked = stream
        const address = `${stream.remoteAddress}:${stream.remotePort}`
        if (trusted !== undefined && trusted !== address) {
          fencedUntil = now() + fenceMs
          opts.onFenced?.(trusted, address)
        }
        trusted = address
      }
      return fencedUntil === 0 || fencedUntil <= now()
    }
  }
}
