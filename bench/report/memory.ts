import type { Redis } from 'ioredis'

export interface CacheMemory {
  orgs: number
  keys: number
  totalBytes: number
  bytesPerOrg: number
  maxOrgBytes: number
  /** By key kind: overview (stats), compliance, units:status, alerts:count, devices:online, temperature:trends, gen (fences), idx. */
  byKind: Record<string, { keys: number, bytes: number }>
}

/**
 * Redis' own accounting (MEMORY USAGE … SAMPLES 0: exact, key and value overhead included) of every
 * `<prefix>dashboard:*` key of the given organizations, found by SCAN. Run while the cache is in use.
 */
export async function measureCacheMemory (redis: Redis, orgIds: string[], prefix = 'coldboard:'): Promise<CacheMemory> {
  const orgs = new Set(orgIds.map((id) => id.toLowerCase()))
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}dashboard:*`, 'COUNT', 1000)
    cursor = next
    keys.push(...batch)
  } while (cursor !== '0')
  const perOrg = new Map<string, number>()
  const byKind: CacheMemory['byKind'] = {}
  let total = 0
  let counted = 0
  for (let i = 0; i < keys.length; i += 500) {
    const slice = keys.slice(i, i + 500)
    const pipeline = redis.pipeline()
    for (const k of slice) pipeline.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')
    const results = (await pipeline.exec()) ?? []
    slice.forEach((key, j) => {
      const m = /^dashboard:(.+):org:\{([0-9a-f-]{36})\}/.exec(key.slice(prefix.length))
      const bytes = Number(results[j]?.[1] ?? 0)
      if (!m || !orgs.has(m[2]!) || !bytes) return // expired meanwhile, or not one of ours
      const kind = m[1]!
      byKind[kind] ??= { keys: 0, bytes: 0 }
      byKind[kind].keys++
      byKind[kind].bytes += bytes
      perOrg.set(m[2]!, (perOrg.get(m[2]!) ?? 0) + bytes)
      total += bytes
      counted++
    })
  }
  return {
    orgs: orgs.size,
    keys: counted,
    totalBytes: total,
    bytesPerOrg: orgs.size > 0 ? Math.round(total / orgs.size) : 0,
    maxOrgBytes: Math.max(0, ...perOrg.values()),
    byKind
  }
}
