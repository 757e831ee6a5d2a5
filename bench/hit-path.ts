/**
 * What a cache hit costs over HTTP, against a miss and against a bare Fastify route, on the real app: one
 * organization with 1,000 units, their devices and 24 h of 1-minute readings (1.44 M rows) in PostgreSQL,
 * a private redis-server, autocannon for --duration seconds per scenario with 10 connections (in a worker
 * thread, so the load generator does not share the server's event loop). Also counts the Redis commands
 * of one hit, one miss and one `cache-control: no-cache` request (INFO commandstats, minus an idle baseline
 * over the same interval, and MONITOR to tell the app's commands from those its Lua scripts run).
 *
 *   npx tsx bench/hit-path.ts [--duration 10] [--connections 10] [--keep] [--only 'dashboard hit,bare'] [--auto-pipelining]
 *                             [--url postgres://postgres@127.0.0.1:5432/postgres]
 *
 * Creates (drop + create) the database cb_bench_hit and drops it at the end unless --keep. Writes bench-out/hit-path.json.
 */
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import type { AddressInfo } from 'node:net'
import autocannon, { type Result } from 'autocannon'
import Fastify, { type FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { Redis } from 'ioredis'
import { buildApp, type App } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { createDatabase } from '../src/infra/postgres.js'
import { waitFor } from '../src/lib/net.js'
import { commandStats, startBenchRedis } from './lib/redis-server.js'
import { adminQuery, databaseUrl, seedOrganization } from './lib/seed.js'
import { log, machine, markdownTable, ratio, writeResult } from './lib/stats.js'

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '10' },
    keep: { type: 'boolean', default: false },
    url: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    // Comma-separated scenario names, e.g. to profile one: --only 'dashboard hit'
    only: { type: 'string' },
    // Experiment: ioredis enableAutoPipelining on every connection of the app (one socket write per tick).
    'auto-pipelining': { type: 'boolean', default: false }
  }
})
const ONLY = args.only?.split(',').map((x) => x.trim())
const DURATION = Number(args.duration)
const CONNECTIONS = Number(args.connections)
const DB_NAME = 'cb_bench_hit'
const JWT_SECRET = 'bench-secret-bench-secret-bench-secret-0123'
const LOG_LEVEL = 'warn'

interface Scenario { name: string, url: string, headers?: Record<string, string>, expectCache?: 'hit' | 'bypass' }
interface Run { name: string, reqPerSec: number, p50: number, p99: number, mean: number, meanLittle: number, requests: number, non2xx: number, errors: number, dbLoads: number }

async function dbLoads (app: App): Promise<number> {
  const metrics = await app.metrics.registry.getSingleMetric('dashboard_db_load_total')?.get()
  return (metrics?.values ?? []).reduce((s, v) => s + v.value, 0)
}

async function load (s: Scenario, duration: number): Promise<Result> {
  return autocannon({ url: s.url, connections: CONNECTIONS, duration, workers: 1, headers: s.headers })
}

async function runScenario (app: App, s: Scenario): Promise<Run> {
  const probe = await fetch(s.url, { headers: s.headers })
  await probe.arrayBuffer()
  if (probe.status !== 200) throw new Error(`${s.name}: status ${probe.status}`)
  if (s.expectCache && probe.headers.get('x-cache') !== s.expectCache) throw new Error(`${s.name}: x-cache ${probe.headers.get('x-cache')}`)
  await load(s, 2) // warm-up: JIT, connection pools
  const loadsBefore = await dbLoads(app)
  const r = await load(s, DURATION)
  const run: Run = {
    name: s.name,
    reqPerSec: Math.round(r.requests.average),
    p50: r.latency.p50,
    p99: r.latency.p99,
    mean: Math.round(r.latency.mean * 100) / 100,
    // autocannon records whole milliseconds; with a closed loop of N connections the mean is exactly N / throughput.
    meanLittle: Math.round((CONNECTIONS / (r.requests.total / r.duration)) * 1000 * 1000) / 1000,
    requests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    dbLoads: (await dbLoads(app)) - loadsBefore
  }
  if (run.non2xx > 0 || run.errors > 0) throw new Error(`${s.name}: ${run.non2xx} non-2xx, ${run.errors} errors`)
  log(`${s.name}: ${run.reqPerSec} req/s, p50 ${run.p50} ms, p99 ${run.p99} ms, ${run.dbLoads} PostgreSQL loads`)
  return run
}

type Counts = Record<string, number>

/**
 * Redis commands caused by `act` (none: the idle baseline): commandstats over a fixed window minus the baseline,
 * plus the MONITOR lines, marked `lua` when a script ran them.
 */
async function commandsOf (admin: Redis, monitorLines: string[], act: () => Promise<void>, windowMs = 300): Promise<{ stats: Counts, monitor: string[] }> {
  await sleep(50)
  monitorLines.length = 0
  await admin.config('RESETSTAT')
  const t = Date.now()
  await act()
  await sleep(Math.max(0, windowMs - (Date.now() - t)))
  const stats: Counts = {}
  for (const [cmd, v] of Object.entries(await commandStats(admin))) stats[cmd] = v.calls
  return { stats, monitor: monitorLines.filter((l) => !/^(CONFIG|INFO|MONITOR) /.test(l)) }
}

function minus (a: Counts, b: Counts): Counts {
  const out: Counts = {}
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (a[k] ?? 0) - (b[k] ?? 0)
    if (d !== 0) out[k] = d
  }
  return out
}

async function main (): Promise<void> {
  const atStart = machine()
  const adminUrl = args.url
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`)
  await adminQuery(adminUrl, `CREATE DATABASE ${DB_NAME}`)
  const redis = await startBenchRedis()
  const database = await createDatabase({ databaseUrl: databaseUrl(adminUrl, DB_NAME), dataDir: '.coldboard-bench' })
  let app: App | null = null
  let bare: FastifyInstance | null = null
  try {
    await database.migrate()
    let t = Date.now()
    const orgId = await seedOrganization(database.db, { units: 1000, minutes: 24 * 60, end: new Date() })
    await database.db.execute(sql`vacuum (analyze)`)
    log(`seeded 1,000 units and 1.44 M readings in ${((Date.now() - t) / 1000).toFixed(1)} s`)

    const config = loadConfig({
      NODE_ENV: 'production', JWT_SECRET, LOG_LEVEL, REDIS_URL: redis.url, DATABASE_URL: databaseUrl(adminUrl, DB_NAME), DATA_DIR: '.coldboard-bench', RATE_LIMIT_MAX: '10000000'
    })
    if (args['auto-pipelining']) {
      // Not a public API: the defaults every new ioredis client is built from (the app has no option for it).
      const r = Redis as unknown as { defaultOptions: Record<string, unknown> }
      r.defaultOptions = { ...r.defaultOptions, enableAutoPipelining: true }
    }
    app = await buildApp({ config, database, worker: false, sweeper: false })
    // The app's server options (src/app.ts), so that the baseline differs from the app only by plugins and routes.
    bare = Fastify({
      logger: { level: LOG_LEVEL },
      bodyLimit: 1024 * 1024,
      trustProxy: config.trustProxy as boolean | string[],
      ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, allErrors: false } }
    })
    const appUrl = await app.listen({ port: 0, host: '127.0.0.1' })
    const cache = app.cache
    await waitFor(() => cache.isAvailable(), 10_000, 'the cache connection')
    const auth = { authorization: `Bearer ${app.tokens.sign({ sub: 'bench', orgs: { [orgId]: 'viewer' } })}` }
    const dashboardUrl = `${appUrl}/api/orgs/${orgId}/dashboard`
    const unitsUrl = `${appUrl}/api/orgs/${orgId}/dashboard/units/status`
    t = Date.now()
    const first = await fetch(dashboardUrl, { headers: auth })
    const body = await first.text()
    const coldLoadMs = Date.now() - t
    log(`first dashboard load (x-cache ${first.headers.get('x-cache')}, compliance computed): ${coldLoadMs} ms, ${body.length} bytes`)

    // The baseline: the same server options, a constant reply of the dashboard's size sent the way a hit is sent.
    bare.get('/bare', (_req, reply) => reply.type('application/json; charset=utf-8').send(body))
    await bare.listen({ port: 0, host: '127.0.0.1' })
    const bareUrl = `http://127.0.0.1:${(bare.server.address() as AddressInfo).port}/bare`
    const noCache = { ...auth, 'cache-control': 'no-cache' }

    const scenarios: Scenario[] = [
      { name: 'bare', url: bareUrl },
      { name: 'health/live', url: `${appUrl}/health/live` },
      { name: 'dashboard hit', url: dashboardUrl, headers: auth, expectCache: 'hit' },
      { name: 'dashboard no-cache', url: dashboardUrl, headers: noCache, expectCache: 'bypass' },
      { name: 'units/status hit', url: unitsUrl, headers: auth, expectCache: 'hit' },
      { name: 'units/status no-cache', url: unitsUrl, headers: noCache, expectCache: 'bypass' }
    ]
    const runs: Run[] = []
    for (const s of scenarios.filter((x) => !ONLY || ONLY.includes(x.name))) {
      if (s.expectCache === 'hit') await (await fetch(s.url, { headers: s.headers })).arrayBuffer() // warm (TTL 60 s > one run)
      runs.push(await runScenario(app, s))
    }

    // Redis commands of single requests, the app otherwise idle (no worker, no sweeper timer).
    const admin = redis.client
    const monitor = await admin.monitor()
    monitor.on('error', () => {}) // a MONITOR line can still arrive while it disconnects
    const monitorLines: string[] = []
    monitor.on('monitor', (_time: string, argv: string[], source: string) => {
      monitorLines.push(`${source.startsWith('lua') ? '[lua] ' : ''}${argv.map((a, i) => (i === 0 ? a.toUpperCase() : a.length > 120 ? `<${a.length} bytes>` : a)).join(' ')}`)
    })
    const request = (url: string, headers: Record<string, string>) => async () => { await (await fetch(url, { headers })).arrayBuffer() }
    const idle = await commandsOf(admin, monitorLines, async () => {})
    const probes: Record<string, { commands: Counts, monitor: string[] }> = {}
    for (const [label, url] of [['dashboard', dashboardUrl], ['units/status', unitsUrl]] as const) {
      const keys = app.dashboard.keys
      const key = keys.entry({ queryType: label === 'dashboard' ? 'stats' : 'units_status', orgId })
      await request(url, noCache)() // cached, and the overview's compliance figure too (it may have expired)
      const kinds = label === 'dashboard' ? ['hit', 'miss', 'cold miss', 'no-cache'] as const : ['hit', 'miss', 'no-cache'] as const
      for (const kind of kinds) {
        if (kind === 'miss') await admin.unlink(key)
        if (kind === 'cold miss') await admin.unlink(key, keys.compliance(orgId))
        const r = await commandsOf(admin, monitorLines, request(url, kind === 'no-cache' ? noCache : auth))
        probes[`${label} ${kind}`] = { commands: minus(r.stats, idle.stats), monitor: r.monitor.map((l) => l.replaceAll(orgId, '<org>')) }
      }
    }
    monitor.disconnect()

    const rps = (name: string) => runs.find((r) => r.name === name)?.reqPerSec ?? 0
    console.log(`\n## HTTP: ${CONNECTIONS} connections, ${DURATION} s per scenario (latency in ms; p50/p99 from autocannon, whole ms)\n\n${markdownTable(
      ['scenario', 'req/s', 'p50', 'p99', 'mean (N / req/s)', 'requests', 'PostgreSQL loads'],
      runs.map((r) => [r.name, r.reqPerSec, r.p50, r.p99, r.meanLittle, r.requests, r.dbLoads]))}`)
    const ratios = {
      dashboardHitOverBare: ratio(rps('dashboard hit'), rps('bare'), 2),
      dashboardHitOverHealthLive: ratio(rps('dashboard hit'), rps('health/live'), 2),
      dashboardHitOverNoCache: ratio(rps('dashboard hit'), rps('dashboard no-cache')),
      unitsHitOverBare: ratio(rps('units/status hit'), rps('bare'), 2),
      unitsHitOverNoCache: ratio(rps('units/status hit'), rps('units/status no-cache'))
    }
    console.log(`\n## Ratios of req/s (same run)\n\n${markdownTable(['ratio', 'value'], Object.entries(ratios).map(([k, v]) => [k, v]))}`)
    console.log(`\n## Redis commands of one request (INFO commandstats minus an idle baseline; script-internal commands included)\n\n${markdownTable(
      ['request', 'commands (calls)', 'MONITOR'],
      Object.entries(probes).map(([k, v]) => [k, Object.entries(v.commands).map(([c, n]) => `${c} ${n}`).join(', '), v.monitor.join(' · ')]))}`)
    console.log(`\nidle baseline over the same window: ${JSON.stringify(idle.stats)}`)
    const file = writeResult('hit-path.json', {
      machine: { ...atStart, loadAvgAtEnd: machine().loadAvg },
      setup: { units: 1000, readings: 1000 * 24 * 60, connections: CONNECTIONS, durationSeconds: DURATION, logLevel: LOG_LEVEL, dashboardBytes: body.length, autoPipelining: args['auto-pipelining'] },
      coldDashboardLoadMs: coldLoadMs,
      runs,
      ratios,
      redisCommands: { idleBaseline: idle.stats, probes }
    })
    log(`wrote ${file}`)
  } finally {
    await bare?.close()
    if (app) await app.close()
    await database.close()
    await redis.stop()
    if (!args.keep) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`)
    else log(`kept database ${DB_NAME}`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
