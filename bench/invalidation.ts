/**
 * Invalidation cost against the size of the Redis keyspace: the design log's org-wide SCAN MATCH + UNLINK (D4, D13)
 * against the per-entry script (src/features/cache/scripts/invalidate.lua) that events use, plus the memory the fences cost over time.
 *
 *   npx tsx bench/invalidation.ts [--sizes 0,100000,1000000] [--iterations 200] [--scan-budget 60]
 *                                 [--memory-ops 10000] [--rate 500]
 *
 * Everything runs on a private redis-server on a free port (never the shared 6379), flushed between keyspace sizes.
 * One organization owns 1,004 cached entries (700 unit trends, 300 unit alert counts, 4 organization-level),
 * written through the store's fenced SET as a miss writes them. The organization-wide path deletes the exact keys of
 * the organization's 1,000 units in calls of at most 500 keys. Each timed call is one `await` on the client, so
 * the figures include the round trips. Prints markdown and writes bench-out/invalidation.json.
 */
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import type { ChangeEvent } from '../src/features/changes/events.js'
import { entriesForEvent, type Entry } from '../src/features/dashboard/query-types.js'
import { BENCH_PREFIX, benchCache, fillUnrelated, orgFixture, populate, type BenchCache } from './lib/cache-fixture.js'
import { commandStats, info, startBenchRedis } from './lib/redis-server.js'
import { log, machine, markdownTable, ratio, summarize, writeResult, type Summary } from './lib/stats.js'

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '0,100000,1000000' },
    iterations: { type: 'string', default: '200' },
    'scan-budget': { type: 'string', default: '60' },
    'memory-ops': { type: 'string', default: '10000' },
    rate: { type: 'string', default: '500' }
  }
})
const SIZES = args.sizes.split(',').map(Number)
const ITERATIONS = Number(args.iterations)
const MIN_SCAN_ITERATIONS = 30
const SCAN_BUDGET_MS = Number(args['scan-budget']) * 1000
const WARMUP = 10
const MEMORY_OPS = Number(args['memory-ops'])
const RATE = Number(args.rate)

type PathName = 'scan' | 'unitUpdate' | 'orgWide'
interface PathResult extends Summary { serverUs: { mean: number, p50: number, p99: number }, scanCallsPerCall?: number }

const fx = orgFixture({ units: 1000, trends: 700, unitAlerts: 300 })
const pattern = `${BENCH_PREFIX}dashboard:*:org:{${fx.orgId}}*`

function unitUpdate (unitId: string): ChangeEvent {
  return {
    name: 'unitUpdate',
    payload: { organizationId: fx.orgId, unitId, state: 'too_hot', previousState: 'normal', lastTemperature: 9.5, lastReadingAt: new Date().toISOString() }
  }
}

/** Server time of the commands that make one call: the delta of INFO commandstats around it. */
function serverUs (before: Awaited<ReturnType<typeof commandStats>>, after: typeof before, commands: string[]): { us: number, calls: Record<string, number> } {
  let us = 0
  const calls: Record<string, number> = {}
  for (const c of commands) {
    us += (after[c]?.usec ?? 0) - (before[c]?.usec ?? 0)
    calls[c] = (after[c]?.calls ?? 0) - (before[c]?.calls ?? 0)
  }
  return { us, calls }
}

/**
 * Runs `prepare` (untimed) then `call` (timed) until `iterations` samples, or, with a budget, until the budget
 * is spent once `minIterations` are in. Warm-up rounds are not recorded.
 */
async function measure (admin: Redis, o: {
  prepare: (i: number) => Promise<void>
  call: (i: number) => Promise<unknown>
  commands: string[]
  iterations: number
  budgetMs?: number
  minIterations?: number
}): Promise<PathResult> {
  for (let i = 0; i < WARMUP; i++) { await o.prepare(i); await o.call(i) }
  const ms: number[] = []
  const us: number[] = []
  let scans = 0
  const started = performance.now()
  for (let i = 0; i < o.iterations; i++) {
    if (o.budgetMs !== undefined && i >= (o.minIterations ?? 0) && performance.now() - started > o.budgetMs) break
    await o.prepare(i)
    const before = await commandStats(admin)
    const t = performance.now()
    await o.call(i)
    ms.push(performance.now() - t)
    const s = serverUs(before, await commandStats(admin), o.commands)
    us.push(s.us)
    scans += s.calls.scan ?? 0
  }
  const server = summarize(us)
  const r: PathResult = { ...summarize(ms), serverUs: { mean: Math.round(server.mean), p50: server.p50, p99: server.p99 } }
  if (o.commands.includes('scan')) r.scanCallsPerCall = Math.round(scans / ms.length)
  return r
}

async function benchSize (admin: Redis, cache: BenchCache, n: number): Promise<Record<PathName, PathResult> & { dbsize: number, usedMemoryMb: number }> {
  await admin.flushall()
  const t = performance.now()
  await fillUnrelated(admin, n)
  await populate(cache, fx.all)
  const dbsize = await admin.dbsize()
  const usedMemoryMb = Math.round(Number((await info(admin, 'memory')).used_memory) / 2 ** 20)
  log(`N=${n}: ${dbsize} keys, ${usedMemoryMb} MB, filled in ${((performance.now() - t) / 1000).toFixed(1)} s`)
  const expected = fx.all.length // the entries (the fence hash is kept, as an administrative purge keeps it)

  log(`N=${n}: (a) invalidatePattern ${pattern}`)
  const scan = await measure(admin, {
    prepare: () => populate(cache, fx.all),
    call: async () => {
      const deleted = await cache.store.invalidatePattern(pattern, cache.keys.isFence)
      if (deleted !== expected) throw new Error(`invalidatePattern deleted ${deleted} keys, expected ${expected}`)
    },
    commands: ['scan', 'unlink'],
    iterations: ITERATIONS,
    budgetMs: SCAN_BUDGET_MS,
    minIterations: MIN_SCAN_ITERATIONS
  })

  log(`N=${n}: (b) the event script for a unitUpdate`)
  let current: Entry[] = []
  const unitUpdateResult = await measure(admin, {
    prepare: async (i) => {
      current = entriesForEvent(unitUpdate(fx.unitIds[(i * 37) % 700]!))
      await populate(cache, current)
    },
    call: () => cache.invalidateEntries(fx.orgId, current),
    commands: ['evalsha', 'eval'],
    iterations: ITERATIONS
  })

  log(`N=${n}: (c) organization-wide invalidation of the ${fx.unitIds.length} units' keys`)
  const orgWide = await measure(admin, {
    prepare: () => populate(cache, fx.all),
    call: () => cache.invalidateEntries(fx.orgId, [], { unitIds: fx.unitIds }),
    commands: ['evalsha', 'eval'],
    iterations: ITERATIONS
  })
  const left = await admin.exists(...fx.perUnit.map(cache.keys.entry))
  if (left !== 0) throw new Error(`${left} unit keys survived an organization-wide invalidation`)
  return { scan, unitUpdate: unitUpdateResult, orgWide, dbsize, usedMemoryMb }
}

/** 10,000 event invalidations + re-reads for one organization at a fixed rate; memory sampled along the way. */
async function steadyMemory (admin: Redis, cache: BenchCache) {
  await admin.flushall()
  await populate(cache, fx.all)
  const snapshot = async () => ({
    usedMemory: Number((await info(admin, 'memory')).used_memory),
    keys: await admin.dbsize(),
    generationFields: await admin.hlen(cache.keys.fence(fx.orgId)),
    generationBytes: Number(await admin.memory('USAGE', cache.keys.fence(fx.orgId)) ?? 0)
  })
  const before = await snapshot()
  const samples: Array<{ op: number, usedMemory: number, keys: number }> = []
  const start = performance.now()
  let lagMax = 0
  for (let k = 0; k < MEMORY_OPS; k++) {
    const due = start + (k * 1000) / RATE
    const wait = due - performance.now()
    if (wait > 0) await sleep(wait)
    else lagMax = Math.max(lagMax, -wait)
    // Any unit of the 1,000 (so the fences of units never cached before appear too), the mix ingestion produces.
    const unitId = fx.unitIds[Math.floor(Math.random() * fx.unitIds.length)]!
    const r = Math.random()
    const ev: ChangeEvent = r < 0.6
      ? unitUpdate(unitId)
      : r < 0.9
        ? { name: 'alertCreated', payload: { organizationId: fx.orgId, alertId: fx.orgId, unitId, type: 'temperature_excursion', severity: 'warning', status: 'active' } }
        : { name: 'deviceStatusChange', payload: { organizationId: fx.orgId, deviceId: unitId, unitId, status: 'offline' } }
    const entries = entriesForEvent(ev)
    const orgWide = k % 1000 === 500 // management writes drop the whole organization now and then
    await cache.invalidateEntries(fx.orgId, entries, orgWide ? { unitIds: fx.unitIds } : undefined)
    await populate(cache, orgWide ? fx.all : entries)
    if ((k + 1) % 1000 === 0) {
      const s = await snapshot()
      samples.push({ op: k + 1, usedMemory: s.usedMemory, keys: s.keys })
    }
  }
  const seconds = (performance.now() - start) / 1000
  const after = await snapshot()
  return { operations: MEMORY_OPS, targetRate: RATE, achievedRate: Math.round(MEMORY_OPS / seconds), maxLagMs: Math.round(lagMax), before, after, samples }
}

async function main (): Promise<void> {
  const atStart = machine()
  const redis = await startBenchRedis()
  const cache = await benchCache(redis.url)
  try {
    const sizes: Record<string, Awaited<ReturnType<typeof benchSize>>> = {}
    for (const n of SIZES) sizes[n] = await benchSize(redis.client, cache, n)
    log('steady-state memory')
    const memory = await steadyMemory(redis.client, cache)

    const rows = Object.entries(sizes).flatMap(([n, r]) => (['scan', 'unitUpdate', 'orgWide'] as const).map((p) => [
      Number(n).toLocaleString('en-US'), p === 'scan' ? 'invalidatePattern (SCAN+UNLINK)' : p === 'unitUpdate' ? 'event script, unitUpdate' : 'organization-wide',
      r[p].n, r[p].mean, r[p].p50, r[p].p99, r[p].max, r[p].serverUs.p50, r[p].serverUs.p99, r[p].scanCallsPerCall ?? null
    ]))
    const ratios = Object.entries(sizes).map(([n, r]) => [
      Number(n).toLocaleString('en-US'),
      ratio(r.scan.p50, r.unitUpdate.p50), ratio(r.scan.p99, r.unitUpdate.p99),
      ratio(r.scan.p50, r.orgWide.p50), ratio(r.scan.p99, r.orgWide.p99),
      r.unitUpdate.p99 < 5 && r.orgWide.p99 < 5 ? 'yes' : 'no'
    ])
    const mb = (b: number) => Math.round((b / 2 ** 20) * 100) / 100
    console.log(`\n## Invalidation latency (ms, client-observed; server µs = Redis time per call)\n\n${markdownTable(
      ['keyspace', 'path', 'n', 'mean', 'p50', 'p99', 'max', 'server p50 µs', 'server p99 µs', 'SCAN calls'], rows)}`)
    console.log(`\n## Ratios (same run)\n\n${markdownTable(
      ['keyspace', 'SCAN / unitUpdate p50', 'p99', 'SCAN / org-wide p50', 'p99', 'new path p99 < 5 ms'], ratios)}`)
    console.log(`\n## Steady state: ${memory.operations} invalidations + re-reads at ${memory.achievedRate}/s (target ${memory.targetRate}/s)\n\n${markdownTable(
      ['', 'used_memory MB', 'keys', 'fence hash fields', 'fence hash bytes'], [
        ['before', mb(memory.before.usedMemory), memory.before.keys, memory.before.generationFields, memory.before.generationBytes],
        ['after', mb(memory.after.usedMemory), memory.after.keys, memory.after.generationFields, memory.after.generationBytes]
      ])}\n\nused_memory every 1,000 operations (MB / keys): ${memory.samples.map((s) => `${mb(s.usedMemory)}/${s.keys}`).join(', ')}`)
    const file = writeResult('invalidation.json', {
      machine: { ...atStart, loadAvgAtEnd: machine().loadAvg },
      setup: { pattern, orgEntries: fx.all.length, perUnitKeys: fx.perUnit.length, iterations: ITERATIONS, minScanIterations: MIN_SCAN_ITERATIONS, scanBudgetSeconds: SCAN_BUDGET_MS / 1000, warmup: WARMUP },
      sizes,
      ratios: Object.fromEntries(Object.entries(sizes).map(([n, r]) => [n, {
        scanOverUnitUpdateP50: ratio(r.scan.p50, r.unitUpdate.p50),
        scanOverUnitUpdateP99: ratio(r.scan.p99, r.unitUpdate.p99),
        scanOverOrgWideP50: ratio(r.scan.p50, r.orgWide.p50),
        scanOverOrgWideP99: ratio(r.scan.p99, r.orgWide.p99)
      }])),
      memory
    })
    log(`wrote ${file}`)
  } finally {
    await cache.close()
    await redis.stop()
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
