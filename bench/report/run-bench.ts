import { randomBytes } from 'node:crypto'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { envSchema } from '../../src/config.js'
import { machine } from '../lib/stats.js'
import { benchPostgres } from '../lib/postgres-server.js'
import { startBenchRedis } from '../lib/redis-server.js'
import { createWorkloadDatabase, seedWorkload } from '../workload/dataset.js'
import { panels } from '../workload/latency.js'
import { describeWorkload, SMOKE, W1, workloadFlagOptions, workloadFrom, workloadUsage } from '../workload/options.js'
import { createPgStats } from '../workload/pg-stats.js'
import { runWorkload, type RunResult } from '../workload/run.js'
import { startService } from '../workload/service.js'
import { reportMarkdown } from './markdown.js'
import { measureCacheMemory, type CacheMemory } from './memory.js'
import { hitPathMicro, invalidationMicro } from './micro.js'
import { buildReport, type Report } from './report.js'
import { latencyPercentilesSvg } from './svg.js'

export const DEFAULT_ADMIN_URL = 'postgres://postgres:postgres@127.0.0.1:5432/postgres'
// The service's rules, passed to it explicitly so the seeded history and the writers agree with them.
const RULES = { offlineAfterMinutes: 15, confirmMinutes: 10 }
const TTL_SECONDS = 60
const PLOT = 'latency-percentiles.svg'

export const benchUsage = `usage: coldboard bench [flags]
Runs W1 with the cache on, on without its refresh on invalidation, and off (coldboard serve as a child process, a private redis-server, a private
PostgreSQL with pg_stat_statements), the invalidation, hit-path and peer micro-benchmarks, and writes DIR/report.json, DIR/report.md and
the latency plot. docs/PERFORMANCE.md explains the figures.
  --out DIR                     where to write the report (default bench-out)
  --update-docs                 also write docs/PERFORMANCE.md, docs/performance/report.json and the plot
  --smoke                       a seconds-long variant on a toy dataset (CI: the fields, not the figures)
  --database-url URL            a PostgreSQL superuser URL to run on instead of a private server (initdb, with
                                pg_stat_statements preloaded; the fallback, ${DEFAULT_ADMIN_URL}, when no binaries are
                                found): the dashboard's queries are then estimated from pg_stat_database unless that
                                server preloads pg_stat_statements
  --database NAME               the database to create and drop (default coldboard_bench_<pid>); --keep-database
  --connections N (10)  --micro-duration S (6)  --micro-rounds N (7)   autocannon, per hit-path scenario
  --invalidation-keys N (1000000)  --invalidation-iterations N (300)
  --service-env NAME=value      set for coldboard serve in both runs (repeatable), e.g. CACHE_REFRESH=false
  --worker-process              cache on: the queue worker in a process of its own and \`serve --no-worker\` (deploy/'s
                                topology); cache off has no queue, so it evaluates in the API process either way
  --render-only                 rewrite report.md (and the docs with --update-docs) from DIR/report.json
${workloadUsage}
`

/** DIR/report.md from the report, and with `docs` docs/PERFORMANCE.md (plots under docs/performance/). */
function writeReport (out: string, report: Report, docs: boolean, log: (line: string) => void): void {
  writeFileSync(path.join(out, 'report.md'), reportMarkdown(report, { plotPrefix: '' }))
  if (!docs) return
  const dir = fileURLToPath(new URL('../../docs', import.meta.url))
  mkdirSync(path.join(dir, 'performance'), { recursive: true })
  for (const plot of report.plots) copyFileSync(path.join(out, plot), path.join(dir, 'performance', plot))
  writeFileSync(path.join(dir, 'PERFORMANCE.md'), reportMarkdown(report, { plotPrefix: 'performance/' }))
  // Every figure behind the page, machine-readable, committed beside it.
  writeFileSync(path.join(dir, 'performance', 'report.json'), JSON.stringify(report, null, 2) + '\n')
  log('updated docs/PERFORMANCE.md and docs/performance/ (report.json and the plot)')
}

type BenchArgs = ReturnType<typeof parseBenchArgs>

export function parseBenchArgs (argv: string[]) {
  let values: Record<string, string | boolean | string[] | undefined>
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: {
        ...workloadFlagOptions,
        out: { type: 'string', default: 'bench-out' },
        smoke: { type: 'boolean', default: false },
        'update-docs': { type: 'boolean', default: false },
        'render-only': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
        'database-url': { type: 'string' },
        database: { type: 'string' },
        'keep-database': { type: 'boolean', default: false },
        connections: { type: 'string' },
        'micro-duration': { type: 'string' },
        'micro-rounds': { type: 'string' },
        'invalidation-keys': { type: 'string' },
        'invalidation-iterations': { type: 'string' },
        'service-env': { type: 'string', multiple: true },
        'worker-process': { type: 'boolean', default: false }
      }
    }).values
  } catch (err) {
    throw new Error(`bench: ${(err as Error).message}`)
  }
  const smoke = values.smoke === true
  const int = (flag: string, fallback: number, min: number, max: number) => {
    const raw = values[flag]
    if (raw === undefined) return fallback
    const n = Number(raw)
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`bench: --${flag} must be an integer from ${min} to ${max}, got "${String(raw)}"`)
    return n
  }
  return {
    help: values.help === true,
    smoke,
    workload: workloadFrom(values as Record<string, string | boolean | undefined>, smoke ? SMOKE : W1, 'bench'),
    out: path.resolve(String(values.out)),
    updateDocs: values['update-docs'] === true,
    renderOnly: values['render-only'] === true,
    /** null: a private server (findPostgresBinaries), or DEFAULT_ADMIN_URL without one. */
    adminUrl: typeof values['database-url'] === 'string' ? values['database-url'] : null,
    database: typeof values.database === 'string' ? values.database : `coldboard_bench_${process.pid}`,
    keepDatabase: values['keep-database'] === true,
    connections: int('connections', 10, 1, 1000),
    microSeconds: int('micro-duration', smoke ? 1 : 6, 1, 600),
    microRounds: int('micro-rounds', smoke ? 1 : 7, 1, 20),
    invalidationKeys: int('invalidation-keys', smoke ? 10_000 : 1_000_000, 0, 20_000_000),
    invalidationIterations: int('invalidation-iterations', smoke ? 20 : 300, 1, 100_000),
    workerProcess: values['worker-process'] === true,
    serviceEnv: Object.fromEntries(((values['service-env'] ?? []) as string[]).map((kv) => {
      const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(kv)
      if (!m) throw new Error(`bench: --service-env takes NAME=value, got "${kv}"`)
      return [m[1]!, m[2]!]
    }))
  }
}

async function postgresVersion (url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try { return `PostgreSQL ${(await c.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v}` } finally { await c.end() }
}

/**
 * `coldboard bench`: W1 with the cache on and off, the invalidation, hit-path and peer micro-benchmarks,
 * then DIR/report.json, DIR/report.md and the latency plot (and docs/PERFORMANCE.md with --update-docs).
 */
export async function runBench (argv: string[], log: (line: string) => void): Promise<{ out: string, report: Report } | null> {
  const a = parseBenchArgs(argv)
  if (a.help) {
    process.stdout.write(benchUsage)
    return null
  }
  if (a.renderOnly) {
    const report = JSON.parse(readFileSync(path.join(a.out, 'report.json'), 'utf8')) as Report
    writeReport(a.out, report, a.updateDocs, log)
    return { out: a.out, report }
  }
  const started = performance.now()
  const m0 = machine()
  log(`bench${a.smoke ? ' --smoke' : ''}: ${describeWorkload(a.workload)}`)
  mkdirSync(a.out, { recursive: true })
  // A private PostgreSQL unless --database-url names a server (bench/lib/postgres-server.ts), stopped whatever happens.
  const server = await benchPostgres(a.adminUrl, DEFAULT_ADMIN_URL, log)
  try {
    return await measure(a, server.adminUrl, started, m0, log)
  } finally {
    await server.stop().catch((err: Error) => log(`could not stop the private PostgreSQL: ${err.message}`))
  }
}

/** W1 on and off and the micro-benchmarks on the server of `adminUrl`, in a database of their own; then the report. */
async function measure (a: BenchArgs, adminUrl: string, started: number, m0: ReturnType<typeof machine>, log: (line: string) => void): Promise<{ out: string, report: Report }> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'coldboard-bench-'))
  const jwtSecret = randomBytes(32).toString('base64url')
  const db = await createWorkloadDatabase(adminUrl, a.database)
  const redis = await startBenchRedis()
  let pgStats: Awaited<ReturnType<typeof createPgStats>> | null = null
  try {
    const postgres = await postgresVersion(db.url)
    const orgs = await seedWorkload(db.url, a.workload, RULES, log)
    pgStats = await createPgStats({ adminUrl, database: a.database })
    log(`database statistics: ${pgStats.source}`)
    const env = { OFFLINE_AFTER_MINUTES: String(RULES.offlineAfterMinutes), CONFIRM_MINUTES: String(RULES.confirmMinutes), CACHE_TTL_SECONDS: String(TTL_SECONDS), ...a.serviceEnv }
    if (Object.keys(a.serviceEnv).length > 0) log(`service environment added: ${JSON.stringify(a.serviceEnv)}`)
    const run = async (label: string, redisUrl: string | null, atEnd?: () => Promise<void>, extraEnv: Record<string, string> = {}): Promise<RunResult> => {
      const service = await startService({ databaseUrl: db.url, redisUrl, jwtSecret, instances: 1, workerProcess: a.workerProcess, dataDir, env: { ...env, ...extraEnv }, log })
      try {
        return await runWorkload({ label, workload: a.workload, targets: service.urls, alsoScrape: service.workerUrl ? [service.workerUrl] : [], orgs, jwtSecret, confirmMinutes: RULES.confirmMinutes, pgStats: pgStats!, atEnd, log })
      } finally {
        await service.stop()
      }
    }
    let memory: CacheMemory | null = null
    const cached = await run('cache on', redis.url, async () => { memory = await measureCacheMemory(redis.client, orgs.map((o) => o.orgId)) })
    // The "before" of the refresh on invalidation: the same cache as plain cache-aside (an event deletes, the viewers'
    // refetch loads), from an empty Redis like the run above.
    await redis.client.flushall()
    const refreshOff = await run('cache on, refresh off', redis.url, undefined, { CACHE_REFRESH: 'false' })
    const uncached = await run('cache off', null)
    await redis.client.flushall()
    const invalidation = await invalidationMicro({
      redisUrl: redis.url, admin: redis.client, sizes: [0, a.invalidationKeys], iterations: a.invalidationIterations, log
    })
    const hitPath = await hitPathMicro({
      databaseUrl: db.url,
      redisUrl: redis.url,
      admin: redis.client,
      jwtSecret,
      orgId: orgs[0]!.orgId,
      connections: a.connections,
      durationSeconds: a.microSeconds,
      warmupSeconds: a.smoke ? 0 : 1,
      rounds: a.microRounds,
      log
    })
    const redisVersion = (await redis.client.info('server')).match(/redis_version:(\S+)/)?.[1] ?? 'unknown'

    const svg = latencyPercentilesSvg({
      title: `Dashboard latency seen by the clients, cache on vs off (${a.smoke ? 'smoke run' : 'W1'})`,
      panels: [...panels, 'all' as const].map((p) => ({ title: p === 'all' ? 'all panels' : p, cached: cached.samples[p], uncached: uncached.samples[p] })),
      barMs: 10
    })
    writeFileSync(path.join(a.out, PLOT), svg)
    const m1 = machine()
    const report = buildReport({
      smoke: a.smoke,
      machine: {
        date: m0.date,
        nproc: m0.nproc,
        cpuModel: m0.cpuModel,
        memoryGb: m0.memoryGb,
        node: m0.node,
        postgres,
        redis: redisVersion,
        loadAvgAtStart: m0.loadAvg,
        loadAvgAtEnd: m1.loadAvg
      },
      workload: a.workload,
      cacheTtlSeconds: TTL_SECONDS,
      cacheRefreshWaitMs: envSchema.shape.CACHE_REFRESH_WAIT_MS.parse(a.serviceEnv.CACHE_REFRESH_WAIT_MS),
      workerProcess: a.workerProcess,
      pg: { source: pgStats.source, note: pgStats.note },
      cached,
      refreshOff,
      uncached,
      memory: memory ?? { orgs: orgs.length, keys: 0, totalBytes: 0, bytesPerOrg: 0, maxOrgBytes: 0, byKind: {} },
      invalidation,
      hitPath,
      seconds: (performance.now() - started) / 1000,
      plots: [PLOT]
    })
    writeFileSync(path.join(a.out, 'report.json'), JSON.stringify(report, null, 2) + '\n')
    writeReport(a.out, report, a.updateDocs, log)
    log(`wrote ${path.join(a.out, 'report.json')} and report.md in ${Math.round((performance.now() - started) / 1000)} s`)
    return { out: a.out, report }
  } finally {
    await pgStats?.close().catch(() => {})
    await redis.stop()
    rmSync(dataDir, { recursive: true, force: true })
    if (a.keepDatabase) log(`kept database ${a.database}`)
    else await db.drop().catch((err: Error) => log(`could not drop ${a.database}: ${err.message}`))
  }
}
