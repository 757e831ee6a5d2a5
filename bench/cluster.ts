/**
 * One Redis against a Redis Cluster, in the same run: W1's hit path over HTTP (the dashboard's cached reads) and
 * the invalidation an event waits for before it is emitted. The real app over PostgreSQL (one organization, its
 * units, devices and a day of readings), twice at once: one on a private redis-server, one on a private cluster of
 * 3 primaries and 3 replicas (REDIS_CLUSTER_NODES). Each scenario runs on both back to back, in alternating order,
 * `--rounds` times, so that drift on a shared machine hits both; autocannon in a worker thread, `--connections`
 * connections, `--duration` seconds per scenario.
 *
 * Also measured, for docs/scaling.md: what the failover fence costs per cache command (the slot check), and what
 * the alternative that was not chosen would have cost on the emit path (the invalidation script followed by
 * WAIT 1 for a replica, in one pipeline, on the cluster).
 *
 *   npx tsx bench/cluster.ts [--duration 10] [--connections 10] [--rounds 4] [--units 200] [--invalidations 2000]
 *                            [--url postgres://postgres@127.0.0.1:5432/postgres] [--keep]
 *
 * Creates (drop + create) the database cb_bench_cluster and drops it at the end unless --keep. Writes
 * bench-out/cluster.json. Run it alone: it measures throughput on whatever CPU is left.
 */
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { sql } from 'drizzle-orm'
import { Cluster } from 'ioredis'
import { buildApp, type App } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { scripts } from '../src/features/cache/scripts.js'
import type { ChangeEvent } from '../src/features/changes/events.js'
import { createDatabase, rows } from '../src/infra/postgres.js'
import { clusterSlot } from '../src/lib/cluster-slot.js'
import { waitFor } from '../src/lib/net.js'
import { startRedisCluster } from '../src/lib/redis-cluster.js'
import { startRedisServer } from '../src/lib/redis-server.js'
import { adminQuery, databaseUrl, seedOrganization } from './lib/seed.js'
import { log, machine, markdownTable, ratio, summarize, writeResult, type Summary } from './lib/stats.js'

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '4' },
    units: { type: 'string', default: '200' },
    invalidations: { type: 'string', default: '2000' },
    url: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    keep: { type: 'boolean', default: false }
  }
})
const DURATION = Number(args.duration)
const CONNECTIONS = Number(args.connections)
const ROUNDS = Number(args.rounds)
const UNITS = Number(args.units)
const INVALIDATIONS = Number(args.invalidations)
const DB_NAME = 'cb_bench_cluster'
const JWT_SECRET = 'bench-secret-bench-secret-bench-secret-0123'

type Target = 'single' | 'cluster'
interface HitRun { target: Target, round: number, scenario: string, reqPerSec: number, p50: number, p99: number, non2xx: number, errors: number }

async function hitRun (target: Target, round: number, scenario: string, url: string, headers: Record<string, string>): Promise<HitRun> {
  const probe = await fetch(url, { headers })
  await probe.arrayBuffer()
  if (probe.headers.get('x-cache') !== 'hit') throw new Error(`${target} ${scenario}: x-cache ${probe.headers.get('x-cache')}`)
  await autocannon({ url, connections: CONNECTIONS, duration: 2, workers: 1, headers }) // warm-up
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION, workers: 1, headers })
  const run = { target, round, scenario, reqPerSec: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors + r.timeouts }
  if (run.non2xx > 0 || run.errors > 0) throw new Error(`${target} ${scenario}: ${run.non2xx} non-2xx, ${run.errors} errors`)
  log(`${target} round ${round} ${scenario}: ${run.reqPerSec} req/s, p50 ${run.p50} ms, p99 ${run.p99} ms`)
  return run
}

/** The emit path's wait: a unitUpdate's invalidation through the app's read-through, one after another. */
async function invalidationLatency (app: App, orgId: string, unitIds: string[]): Promise<Summary> {
  const ms: number[] = []
  for (let i = 0; i < INVALIDATIONS + 200; i++) {
    const unitId = unitIds[i % unitIds.length]!
    const event: ChangeEvent = { name: 'unitUpdate', payload: { organizationId: orgId, unitId, state: 'normal', previousState: 'too_hot', lastTemperature: 5, lastReadingAt: new Date().toISOString() } }
    const t = performance.now()
    await app.dashboard.readThrough.invalidate({ organizationId: orgId, events: [event], orgWide: false })
    if (i >= 200) ms.push(performance.now() - t) // the first 200 warm up
  }
  if (app.dashboard.readThrough.hasPending(orgId)) throw new Error('an invalidation failed during the benchmark')
  return summarize(ms)
}

/** The invalidation script alone vs followed by WAIT 1 in one pipeline, on a raw cluster client (the unchosen WAIT design). */
async function waitCost (nodes: Array<{ host: string, port: number }>, orgId: string): Promise<{ script: Summary, scriptThenWait: Summary }> {
  const c = new Cluster(nodes, { enableOfflineQueue: true })
  await new Promise((resolve) => c.once('ready', resolve))
  const fence = `coldboard:dashboard:gen:org:{${orgId}}`
  const entry = (i: number) => `coldboard:dashboard:units:status:org:{${orgId}}:x${i % 3}`
  const once = async (wait: boolean, i: number) => {
    const p = c.pipeline()
    p.eval(scripts.invalidate.lua, 2, fence, entry(i), `t${i}`, 600, '', '', 'units_status')
    if (wait) p.call('WAIT', 1, 100)
    const t = performance.now()
    const res = await p.exec()
    if (res?.some(([err]) => err)) throw new Error('pipeline failed')
    if (wait && Number(res!.at(-1)![1]) < 1) throw new Error('no replica acknowledged')
    return performance.now() - t
  }
  const out = { script: [] as number[], scriptThenWait: [] as number[] }
  for (let i = 0; i < INVALIDATIONS + 200; i++) {
    // Interleaved, so that both see the same machine.
    const a = await once(false, i)
    const b = await once(true, i)
    if (i >= 200) { out.script.push(a); out.scriptThenWait.push(b) }
  }
  c.disconnect()
  return { script: summarize(out.script), scriptThenWait: summarize(out.scriptThenWait) }
}

/** The failover fence's check on a cluster: a CRC16 of the key and two array reads, per cache command. */
function fenceCheckNs (): number {
  const key = 'coldboard:dashboard:units:status:org:{0b4a2f6e-3c1d-4e8f-9a7b-5d6c4e3f2a1b}'
  const owners = new Array<string>(16384).fill('127.0.0.1:7000')
  const until = new Float64Array(16384)
  let ok = 0
  const n = 2_000_000
  const t = performance.now()
  for (let i = 0; i < n; i++) {
    const slot = clusterSlot(key)
    if (owners[slot] === '127.0.0.1:7000' && until[slot]! <= t) ok++
  }
  if (ok !== n) throw new Error('unexpected')
  return Math.round(((performance.now() - t) * 1e6) / n)
}

async function main (): Promise<void> {
  const atStart = machine()
  const adminUrl = args.url
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`)
  await adminQuery(adminUrl, `CREATE DATABASE ${DB_NAME}`)
  const single = await startRedisServer()
  const cluster = await startRedisCluster()
  const database = await createDatabase({ databaseUrl: databaseUrl(adminUrl, DB_NAME), dataDir: '.coldboard-bench' })
  try {
    await database.migrate()
    const orgId = await seedOrganization(database.db, { units: UNITS, minutes: 24 * 60, end: new Date() })
    await database.db.execute(sql`vacuum (analyze)`)
    const unitIds = (await rows<{ id: string }>(database.db, sql`select id from units where organization_id = ${orgId} order by id`)).map((r) => r.id)
    log(`seeded ${UNITS} units and ${UNITS * 24 * 60} readings`)
    const base = { NODE_ENV: 'production', JWT_SECRET, LOG_LEVEL: 'warn', DATABASE_URL: databaseUrl(adminUrl, DB_NAME), DATA_DIR: '.coldboard-bench' }
    const configs: Record<Target, ReturnType<typeof loadConfig>> = {
      single: loadConfig({ ...base, REDIS_URL: single.url }),
      cluster: loadConfig({ ...base, REDIS_CLUSTER_NODES: cluster.nodesEnv })
    }

    // Both apps run at once; each scenario alternates between them (A B, then B A), so that the drift of a shared
    // machine falls on both sides alike.
    const apps = {} as Record<Target, { app: App, base: string }>
    for (const target of ['single', 'cluster'] as const) {
      const app = await buildApp({ config: configs[target], database, worker: false, sweeper: false })
      apps[target] = { app, base: await app.listen({ port: 0, host: '127.0.0.1' }) }
      await waitFor(() => app.cache.isAvailable(), 20_000, 'the cache connection')
    }
    const hits: HitRun[] = []
    const invalidations: Record<Target, Summary[]> = { single: [], cluster: [] }
    try {
      const headers = { authorization: `Bearer ${apps.single.app.tokens.sign({ sub: 'bench', orgs: { [orgId]: 'viewer' } })}` }
      const scenarios = {
        'dashboard hit': { path: `/api/orgs/${orgId}/dashboard`, headers },
        'units/status hit': { path: `/api/orgs/${orgId}/dashboard/units/status`, headers },
        'trend hit (gzip)': { path: `/api/orgs/${orgId}/units/${unitIds[0]}/temperature-trends`, headers: { ...headers, 'accept-encoding': 'gzip' } }
      }
      for (let round = 1; round <= ROUNDS; round++) {
        for (const [scenario, { path, headers: h }] of Object.entries(scenarios)) {
          for (const target of round % 2 === 1 ? ['single', 'cluster'] as const : ['cluster', 'single'] as const) {
            const url = apps[target].base + path
            await (await fetch(url, { headers: h })).arrayBuffer() // cached now (TTL 60 s, longer than one run)
            hits.push(await hitRun(target, round, scenario, url, h))
          }
        }
        for (const target of round % 2 === 1 ? ['single', 'cluster'] as const : ['cluster', 'single'] as const) {
          invalidations[target].push(await invalidationLatency(apps[target].app, orgId, unitIds))
          log(`${target} round ${round} invalidation: p50 ${invalidations[target].at(-1)!.p50} ms, p99 ${invalidations[target].at(-1)!.p99} ms`)
        }
      }
    } finally {
      for (const { app } of Object.values(apps)) await app.close()
    }
    log('WAIT, the design not chosen: the invalidation script with and without WAIT 1 on the cluster')
    const wait = await waitCost(cluster.ports.map((port) => ({ host: '127.0.0.1', port })), orgId)
    const fenceNs = fenceCheckNs()

    const scenarioNames = [...new Set(hits.map((h) => h.scenario))]
    const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length)
    const byScenario = scenarioNames.map((scenario) => {
      const of = (t: Target) => hits.filter((h) => h.scenario === scenario && h.target === t)
      const s = mean(of('single').map((h) => h.reqPerSec))
      const c = mean(of('cluster').map((h) => h.reqPerSec))
      // The ratio of each round's pair (run back to back), and their median: less sensitive to drift than the means.
      const perRound = of('cluster').map((h) => h.reqPerSec / of('single').find((x) => x.round === h.round)!.reqPerSec).sort((a, b) => a - b)
      const median = perRound[Math.floor(perRound.length / 2)]!
      return { scenario, singleReqPerSec: s, clusterReqPerSec: c, ratio: ratio(c, s, 3), medianRoundRatio: Math.round(median * 1000) / 1000, singleP99: Math.max(...of('single').map((h) => h.p99)), clusterP99: Math.max(...of('cluster').map((h) => h.p99)) }
    })
    const inv = (t: Target) => ({ p50: mean(invalidations[t].map((x) => x.p50 * 1000)) / 1000, p99: mean(invalidations[t].map((x) => x.p99 * 1000)) / 1000 })
    console.log(`\n## W1 hit path: req/s (mean of ${ROUNDS} rounds, each pair back to back in alternating order, ${CONNECTIONS} connections, ${DURATION} s each)\n\n${markdownTable(
      ['scenario', 'one Redis', 'cluster (3+3)', 'cluster / one (means)', 'median of round ratios', 'p99 ms one', 'p99 ms cluster'],
      byScenario.map((r) => [r.scenario, r.singleReqPerSec, r.clusterReqPerSec, r.ratio, r.medianRoundRatio, r.singleP99, r.clusterP99]))}`)
    console.log(`\n## Invalidation before the emit (unitUpdate, ms, ${INVALIDATIONS} per round)\n\n${markdownTable(
      ['target', 'p50', 'p99'], (['single', 'cluster'] as const).map((t) => [t, inv(t).p50, inv(t).p99]))}`)
    console.log(`\n## The WAIT design (not chosen), raw cluster client, ms\n\n${markdownTable(
      ['', 'p50', 'p99'], [['script', wait.script.p50, wait.script.p99], ['script + WAIT 1', wait.scriptThenWait.p50, wait.scriptThenWait.p99]])}`)
    console.log(`\nfailover fence check per cache command on a cluster: ${fenceNs} ns`)
    const file = writeResult('cluster.json', {
      machine: { ...atStart, loadAvgAtEnd: machine().loadAvg },
      setup: { units: UNITS, connections: CONNECTIONS, durationSeconds: DURATION, rounds: ROUNDS, invalidations: INVALIDATIONS, cluster: '3 primaries, 3 replicas' },
      hitPath: byScenario,
      runs: hits,
      invalidation: { single: inv('single'), cluster: inv('cluster'), rounds: invalidations },
      waitDesign: wait,
      fenceCheckNs: fenceNs
    })
    log(`wrote ${file}`)
  } finally {
    await database.close()
    await cluster.stop()
    await single.stop('SIGTERM')
    if (!args.keep) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
