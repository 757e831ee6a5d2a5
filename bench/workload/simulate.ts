import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import type { Config } from '../../src/config.js'
import { startBenchRedis, type BenchRedis } from '../lib/redis-server.js'
import { createWorkloadDatabase, seedWorkload } from './dataset.js'
import { panels } from './latency.js'
import { describeWorkload, W1, workloadFlagOptions, workloadFrom, workloadUsage } from './options.js'
import { createPgStats, type PgStats } from './pg-stats.js'
import { runWorkload, type RunResult } from './run.js'
import { startService } from './service.js'

export const simulateUsage = `usage: coldboard simulate [flags]
Seeds the workload into a database of its own, starts coldboard (\`serve\`, a private redis-server),
drives it over HTTP and Socket.io like real clients, and prints what the clients and the service saw.
  --instances N                 coldboard instances to start (default 1), sharing PostgreSQL and Redis
  --no-cache                    start them with REDIS_DISABLED=true
  --worker-process              the queue worker in a process of its own, the instances with --no-worker (deploy/)
  --redis-url URL               use this Redis instead of a private redis-server (nothing is flushed)
  --database-url URL            PostgreSQL superuser URL (default postgres://postgres:postgres@127.0.0.1:5432/postgres);
                                with --target: the targets' own database (organizations are added to it)
  --database NAME               database to create (default coldboard_sim_<pid>); --keep-database keeps it
  --target URL[,URL2]           drive running instances instead (JWT_SECRET must be theirs)
  --json                        print the whole result as JSON
${workloadUsage}
`

export function parseSimulateArgs (argv: string[]) {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: {
        ...workloadFlagOptions,
        target: { type: 'string' },
        instances: { type: 'string', default: '1' },
        'no-cache': { type: 'boolean', default: false },
        'worker-process': { type: 'boolean', default: false },
        'redis-url': { type: 'string' },
        'database-url': { type: 'string' },
        database: { type: 'string' },
        'keep-database': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false }
      }
    }).values
  } catch (err) {
    throw new Error(`simulate: ${(err as Error).message}`)
  }
  const instances = Number(values.instances)
  if (!Number.isInteger(instances) || instances < 1 || instances > 8) throw new Error(`simulate: --instances must be an integer from 1 to 8, got "${String(values.instances)}"`)
  const targets = typeof values.target === 'string' ? values.target.split(',').map((t) => t.trim().replace(/\/+$/, '')).filter(Boolean) : null
  for (const t of targets ?? []) if (!/^https?:\/\/[^/]+$/.test(t)) throw new Error(`simulate: --target must be http(s)://host:port URLs, got "${t}"`)
  if (targets && values['database-url'] === undefined) throw new Error('simulate: --target needs --database-url, the targets\' database (the workload\'s organizations are seeded into it)')
  if (values['no-cache'] && instances > 1) throw new Error('simulate: --no-cache runs without Redis, so events do not cross instances; use one instance')
  const name = typeof values.database === 'string' ? values.database : `coldboard_sim_${process.pid}`
  return {
    help: values.help === true,
    workload: workloadFrom(values, W1, 'simulate'),
    targets,
    instances,
    noCache: values['no-cache'] === true,
    workerProcess: values['worker-process'] === true,
    redisUrl: typeof values['redis-url'] === 'string' ? values['redis-url'] : null,
    databaseUrl: typeof values['database-url'] === 'string' ? values['database-url'] : 'postgres://postgres:postgres@127.0.0.1:5432/postgres',
    database: name,
    keepDatabase: values['keep-database'] === true,
    json: values.json === true
  }
}

/** The JWT secret of running targets: JWT_SECRET, or the one `serve` generated in DATA_DIR. */
function targetSecret (cfg: Config): string {
  if (cfg.JWT_SECRET) return cfg.JWT_SECRET
  const file = path.resolve(cfg.DATA_DIR, 'jwt-secret')
  if (existsSync(file)) return readFileSync(file, 'utf8').trim()
  throw new Error('simulate: --target needs the targets\' JWT_SECRET in the environment (or their DATA_DIR)')
}

export async function runSimulate (argv: string[], config: () => Config, print: (text: string) => void, log: (line: string) => void): Promise<RunResult | null> {
  const a = parseSimulateArgs(argv)
  if (a.help) { print(simulateUsage); return null }
  const cfg = config()
  log(`simulate: ${describeWorkload(a.workload)}`)
  const cleanup: Array<() => Promise<void>> = []
  let pgStats: PgStats | null = null
  try {
    let targets: string[]
    let jwtSecret: string
    let rules = { offlineAfterMinutes: cfg.OFFLINE_AFTER_MINUTES, confirmMinutes: cfg.CONFIRM_MINUTES }
    let databaseUrl: string
    if (a.targets) {
      targets = a.targets
      jwtSecret = targetSecret(cfg)
      databaseUrl = a.databaseUrl
      const orgs = await seedWorkload(databaseUrl, a.workload, rules, log)
      pgStats = await createPgStats({ adminUrl: databaseUrl, database: decodeURIComponent(new URL(databaseUrl).pathname.slice(1)) })
      return report(await runWorkload({ label: 'simulate', workload: a.workload, targets, orgs, jwtSecret, confirmMinutes: rules.confirmMinutes, pgStats, log }))
    }
    rules = { offlineAfterMinutes: 15, confirmMinutes: 10 }
    const db = await createWorkloadDatabase(a.databaseUrl, a.database)
    cleanup.push(async () => { if (!a.keepDatabase) await db.drop(); else log(`simulate: kept database ${a.database}`) })
    databaseUrl = db.url
    const orgs = await seedWorkload(databaseUrl, a.workload, rules, log)
    let redis: BenchRedis | null = null
    if (!a.noCache && !a.redisUrl) {
      redis = await startBenchRedis()
      cleanup.unshift(() => redis!.stop())
    }
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'coldboard-sim-'))
    cleanup.push(async () => rmSync(dataDir, { recursive: true, force: true }))
    jwtSecret = cfg.JWT_SECRET ?? randomBytes(32).toString('base64url')
    const service = await startService({
      databaseUrl,
      redisUrl: a.noCache ? null : (a.redisUrl ?? redis!.url),
      jwtSecret,
      instances: a.instances,
      workerProcess: a.workerProcess,
      dataDir,
      env: { OFFLINE_AFTER_MINUTES: String(rules.offlineAfterMinutes), CONFIRM_MINUTES: String(rules.confirmMinutes) },
      log
    })
    cleanup.unshift(service.stop)
    pgStats = await createPgStats({ adminUrl: a.databaseUrl, database: a.database })
    return report(await runWorkload({ label: 'simulate', workload: a.workload, targets: service.urls, alsoScrape: service.workerUrl ? [service.workerUrl] : [], orgs, jwtSecret, confirmMinutes: rules.confirmMinutes, pgStats, log }))
  } finally {
    await pgStats?.close().catch(() => {})
    for (const fn of cleanup) await fn().catch((err: Error) => log(`simulate: cleanup: ${err.message}`))
  }

  function report (r: RunResult): RunResult {
    if (a.json) {
      const { samples: _samples, ...rest } = r
      print(JSON.stringify(rest, null, 2) + '\n')
    } else {
      print(summaryText(r))
    }
    return r
  }
}

/** What the clients and the service saw, as a few readable lines. */
export function summaryText (r: RunResult): string {
  const lines = [`${r.label}: ${r.seconds} s against ${r.targets.join(', ')}`, 'panel            requests   p50 ms   p95 ms   p99 ms   hit/miss/bypass/error']
  for (const p of [...panels, 'all' as const]) {
    const l = r.clients.latency[p]
    const o = r.clients.outcomes[p]
    lines.push(`${p.padEnd(15)} ${String(l.n).padStart(9)} ${String(l.p50).padStart(8)} ${String(l.p95).padStart(8)} ${String(l.p99).padStart(8)}   ${o.hit}/${o.miss}/${o.bypass}/${o.error}`)
  }
  const s = r.service
  lines.push(`service: hit rate ${s.hitRate === null ? '–' : `${(s.hitRate * 100).toFixed(1)} %`}, ${s.dbLoadsTotal} dashboard loads from PostgreSQL, ` +
    `${s.invalidation.count} invalidations (p50 ${s.invalidation.p50Ms ?? '–'} ms, p99 ${s.invalidation.p99Ms ?? '–'} ms), events ${JSON.stringify(s.eventsEmitted)}`)
  if (r.database) {
    lines.push(`PostgreSQL: ${r.database.measured.transactionsPerSecond} transactions/s (${r.database.writersOnly.transactionsPerSecond}/s with writers alone), ` +
      `dashboard reads ≈ ${r.database.readsPerSecond.transactions} transactions/s, ${r.database.readsPerSecond.rowsRead} rows/s`)
  }
  lines.push(`writers: ${r.writers.accepted}/${r.writers.sent} readings accepted (${r.writers.outOfRange} out of range), ingestion p50 ${r.writers.latencyMs.p50} ms, p99 ${r.writers.latencyMs.p99} ms`)
  lines.push(`viewers: ${r.viewers.viewers}, events received ${JSON.stringify(r.viewers.eventsReceived)}, failures ${JSON.stringify(r.viewers.failures)}`)
  lines.push(`simulator event-loop delay p99 ${r.simulatorEventLoopDelayMs.p99} ms`)
  return lines.join('\n') + '\n'
}
