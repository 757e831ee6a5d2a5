/**
 * Rollups against raw scans, in the same run, on databases of the benchmark's own (seeded with `seedDataset`,
 * the rollups maintained by the insert trigger as in production):
 *
 *   a   1,000 units, 24 h of 1-minute readings (1.44 M): dashboard compliance, unit trend, 24 h report
 *   b   100 units, 93 days of 5-minute readings (2.68 M): the same plus the 93-day report
 *   c   1,000 units, 93 days of readings every --c-interval seconds: the 93-day report, in the service and over HTTP
 *   ingest  POST /api/ingest/readings with 1,000-reading batches, rollup maintenance on and off in alternating rounds
 *
 *   npx tsx bench/rollups.ts [--only a,b,c,ingest] [--runs 20] [--c-interval 300] [--rounds 3] [--batches 40]
 *                            [--url postgres://postgres@127.0.0.1:5432/postgres]
 *
 * Each phase drops and creates its database (cb_bench_rollups_<phase>) and drops it at the end. Raw scans are the
 * statements coldboard ran before rollups (bench/lib/raw-queries.ts). Writes bench-out/rollups.json; the load
 * average is recorded with every figure (the machine has 2 cores: run it alone).
 */
import os from 'node:os'
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { sql } from 'drizzle-orm'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { apiKeys } from '../src/db/schema.js'
import { generateApiKey } from '../src/features/auth/tokens.js'
import { createDashboardQueries, dashboardWindow } from '../src/features/dashboard/queries.js'
import { createReportsService, type ComplianceReport } from '../src/features/reports/service.js'
import { createIngestionService } from '../src/features/ingestion/service.js'
import { createMaintenance } from '../src/features/maintenance/service.js'
import { createDatabase, rows, type Database, type Db } from '../src/infra/postgres.js'
import { manualClock, systemClock } from '../src/lib/clock.js'
import { seedDataset } from '../src/tools/dataset.js'
import { rawComplianceSql, rawReportSql, rawTrendSql } from './lib/raw-queries.js'
import { adminQuery, databaseUrl } from './lib/seed.js'
import { log, machine, markdownTable, ratio, summarize, writeResult, type Summary } from './lib/stats.js'

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'a,b,c,ingest' },
    runs: { type: 'string', default: '20' },
    'c-interval': { type: 'string', default: '300' },
    rounds: { type: 'string', default: '3' },
    batches: { type: 'string', default: '40' },
    url: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' }
  }
})
const PHASES = new Set(args.only.split(',').map((s) => s.trim()))
const RUNS = Number(args.runs)
const DAY = 86_400_000
const JWT_SECRET = 'bench-secret-bench-secret-bench-secret-0123'
const load = () => os.loadavg().map((l) => Math.round(l * 100) / 100)

interface Row { query: string, raw: Summary | null, rollups: Summary, speedup: number | null, load: number[] }
const results: Record<string, unknown> = { machine: machine(), runs: RUNS }

async function measure (fn: (i: number) => Promise<unknown>, runs = RUNS, warm = 3): Promise<Summary> {
  for (let i = 0; i < warm; i++) await fn(i)
  const ms: number[] = []
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    await fn(i + warm)
    ms.push(performance.now() - t)
  }
  return summarize(ms)
}

async function withDatabase<T> (phase: string, fn: (database: Database) => Promise<T>): Promise<T> {
  const name = `cb_bench_rollups_${phase}`
  await adminQuery(args.url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await adminQuery(args.url, `CREATE DATABASE ${name}`)
  const database = await createDatabase({ databaseUrl: databaseUrl(args.url, name), dataDir: '.coldboard-bench', poolMax: 8 })
  try {
    await database.migrate()
    return await fn(database)
  } finally {
    await database.close()
    await adminQuery(args.url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
}

async function seed (db: Db, units: number, hours: number, intervalSeconds: number, end: Date): Promise<string> {
  const t = performance.now()
  const res = await seedDataset(db, { orgs: 1, units, hours, intervalSeconds, sites: 10, seed: 14, offlineAfterMinutes: 15, confirmMinutes: 10 }, manualClock(end))
  log(`seeded ${units} units × ${hours} h every ${intervalSeconds} s: ${res.readings} readings in ${((performance.now() - t) / 1000).toFixed(1)} s (rollups included)`)
  await db.execute(sql`vacuum (analyze)`)
  return res.orgIds[0]!
}

function row (query: string, raw: Summary | null, rollups: Summary): Row {
  const r = { query, raw, rollups, speedup: raw ? ratio(raw.p50, rollups.p50) : null, load: load() }
  log(`${query}: raw p50 ${raw?.p50 ?? '–'} ms, rollups p50 ${rollups.p50} ms (×${r.speedup ?? '–'}), load ${r.load.join(' ')}`)
  return r
}

/** The per-unit totals of a raw report and a rollup report must be the same (thresholds never changed here). */
function sameTotals (raw: Array<{ unit_id: string, readings: number, in_range: number }>, report: ComplianceReport, what: string): void {
  const byUnit = new Map(raw.map((r) => [r.unit_id, r]))
  for (const u of report.units) {
    const r = byUnit.get(u.unitId)
    if (!r || r.readings !== u.readings || r.in_range !== u.inRange) throw new Error(`${what}: unit ${u.unitId} raw ${JSON.stringify(r)} rollups ${u.readings}/${u.inRange}`)
  }
}

async function dashboardAndReports (phase: 'a' | 'b', database: Database, units: number, hours: number, interval: number): Promise<Row[]> {
  const end = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 30_000)
  const db = database.db
  const orgId = await seed(db, units, hours, interval, end)
  const clock = manualClock(end)
  const q = createDashboardQueries({ db, clock })
  const reports = createReportsService({ db, clock, statementTimeoutMs: 600_000, concurrencyPerOrg: 100 })
  const unitIds = (await rows<{ id: string }>(db, sql`select id from units where organization_id = ${orgId} and is_active order by id`)).map((r) => r.id)
  const unit = (i: number) => unitIds[(i * 37) % unitIds.length]!
  const w = dashboardWindow(end)
  const out: Row[] = []

  const [rawC] = await rows<{ compliance: number }>(db, rawComplianceSql(orgId, w.from, w.to))
  if (rawC!.compliance !== await q.compliancePercentage(orgId)) throw new Error('compliance: raw and rollups disagree')
  out.push(row('dashboard compliance (24 h)',
    await measure(() => rows(db, rawComplianceSql(orgId, w.from, w.to))),
    await measure(() => q.compliancePercentage(orgId))))
  out.push(row('unit trend (24 h, 5-minute buckets)',
    await measure((i) => rows(db, rawTrendSql(orgId, unit(i), w.from, w.to))),
    await measure((i) => q.temperatureTrends(orgId, unit(i)))))
  const from24 = new Date(end.getTime() - DAY)
  sameTotals(await rows(db, rawReportSql(orgId, from24.toISOString(), end.toISOString())), await reports.compliance(orgId), '24 h report')
  out.push(row('report (24 h)',
    await measure(() => rows(db, rawReportSql(orgId, from24.toISOString(), end.toISOString()))),
    await measure(() => reports.compliance(orgId))))
  if (phase === 'b') {
    const from93 = new Date(end.getTime() - 93 * DAY)
    const input = { from: from93.toISOString(), to: end.toISOString() }
    // One raw run: it takes tens of seconds.
    let rawRows: Array<{ unit_id: string, readings: number, in_range: number }> = []
    const raw = await measure(async () => { rawRows = await rows(db, rawReportSql(orgId, input.from, input.to)) }, 1, 0)
    sameTotals(rawRows, await reports.compliance(orgId, input), '93-day report')
    out.push(row('report (93 days)', raw, await measure(() => reports.compliance(orgId, input))))
  }
  return out
}

async function report93Thousand (database: Database): Promise<Record<string, unknown>> {
  const interval = Number(args['c-interval'])
  const end = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 30_000)
  const orgId = await seed(database.db, 1000, 93 * 24, interval, end)
  const input = { from: new Date(end.getTime() - 93 * DAY).toISOString(), to: end.toISOString() }
  const reports = createReportsService({ db: database.db, clock: manualClock(end), statementTimeoutMs: 600_000, concurrencyPerOrg: 100 })
  const service = await measure(() => reports.compliance(orgId, input), 10, 2)
  log(`93-day report, 1,000 units, service: p50 ${service.p50} ms, max ${service.max} ms, load ${load().join(' ')}`)
  const app = await buildApp({
    config: loadConfig({ NODE_ENV: 'test', DATABASE_URL: 'postgres://unused', REDIS_DISABLED: 'true', JWT_SECRET, LOG_LEVEL: 'warn' }),
    database,
    clock: manualClock(end)
  })
  try {
    const base = await app.listen({ port: 0, host: '127.0.0.1' })
    const token = app.tokens.sign({ sub: 'bench', orgs: { [orgId]: 'viewer' } })
    const url = `${base}/api/orgs/${orgId}/reports/compliance?from=${input.from}&to=${input.to}`
    let bytes = 0
    const http = await measure(async () => {
      const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
      if (res.status !== 200) throw new Error(`report answered ${res.status}`)
      bytes = (await res.arrayBuffer()).byteLength
    }, 10, 2)
    const csv = await measure(async () => {
      const res = await fetch(`${url}&format=csv`, { headers: { authorization: `Bearer ${token}` } })
      if (res.status !== 200) throw new Error(`csv answered ${res.status}`)
      await res.arrayBuffer()
    }, 5, 1)
    const out = { intervalSeconds: interval, service, http, csv, responseBytes: bytes, load: load() }
    log(`93-day report, 1,000 units, HTTP: p50 ${http.p50} ms, max ${http.max} ms (${(bytes / 1e6).toFixed(1)} MB), CSV p50 ${csv.p50} ms, load ${out.load.join(' ')}`)
    return out
  } finally {
    await app.close()
  }
}

/**
 * Throughput: readings stored per second from the first request to the last answer, with 4 clients each posting
 * 1,000-reading batches (one reading per unit, the next minute each time). Without Redis, evaluation runs inline,
 * so a 202 means stored and evaluated (unit state, alerts). Rounds alternate on/off (the rollup trigger enabled or
 * disabled on the benchmark's database: the benchmark-only switch, no product code reads it); the same rounds also
 * time the store alone (the ingestion service, without HTTP or evaluation) with those batches and with a gateway's
 * (100 units × 10 minutes).
 */
async function ingestion (database: Database): Promise<Record<string, unknown>> {
  const db = database.db
  const now = Date.now()
  const orgId = await seed(db, 1000, 1, 600, new Date(now - 10 * DAY))
  const { key, hash } = generateApiKey()
  await db.insert(apiKeys).values({ organizationId: orgId, name: 'bench', hash })
  const devices = await rows<{ eui: string }>(db, sql`select device_eui as eui from devices where organization_id = ${orgId} order by device_eui`)
  const app = await buildApp({
    config: loadConfig({ NODE_ENV: 'test', DATABASE_URL: 'postgres://unused', REDIS_DISABLED: 'true', JWT_SECRET, LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '10000000' }),
    database
  })
  const maintenance = createMaintenance({ db, clock: systemClock, readingsRetentionDays: 400, rollupRetentionDays: 1100, log: app.log })
  const store = createIngestionService({ db, clock: systemClock, ensurePartitions: maintenance.ensurePartitions, partitionsKnown: maintenance.partitionsKnown })
  const rounds = Number(args.rounds)
  const batches = Number(args.batches)
  let minute = 0
  const startAt = now - 9 * DAY
  const batch = () => {
    const at = new Date(startAt + (minute++) * 60_000).toISOString()
    return devices.map((d, i) => ({ deviceEui: d.eui, temperature: Math.round((4 + 3 * Math.sin(minute / 30 + i)) * 100) / 100, recordedAt: at }))
  }
  // A gateway's batch: 100 units × 10 consecutive minutes (ten times fewer buckets per reading than `batch`).
  let gatewayBatchNo = 0
  const gatewayStart = now - 5 * DAY
  const gatewayBatch = () => {
    const k = gatewayBatchNo++
    const group = devices.slice((k % 10) * 100, (k % 10) * 100 + 100)
    const base = gatewayStart + Math.floor(k / 10) * 10 * 60_000
    return group.flatMap((d, i) => Array.from({ length: 10 }, (_, m) => ({
      deviceEui: d.eui, temperature: Math.round((4 + 3 * Math.sin((k + m) / 30 + i)) * 100) / 100, recordedAt: new Date(base + m * 60_000).toISOString()
    })))
  }
  const storeRate = async (make: () => Array<{ deviceEui: string, temperature: number, recordedAt: string }>) => {
    const list = Array.from({ length: batches }, make)
    let stored = 0
    let next = 0
    const t = performance.now()
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = next++; i < list.length; i = next++) stored += (await store.storeReadings(orgId, list[i]!)).accepted
    }))
    return Math.round(stored / ((performance.now() - t) / 1000))
  }
  type Mode = { http: number[], store: number[], storeGateway: number[], load: number[][] }
  const results: Record<'on' | 'off', Mode> = {
    on: { http: [], store: [], storeGateway: [], load: [] },
    off: { http: [], store: [], storeGateway: [], load: [] }
  }
  try {
    const base = await app.listen({ port: 0, host: '127.0.0.1' })
    for (let r = 0; r < rounds * 2; r++) {
      const mode = r % 2 === 0 ? 'on' : 'off'
      await db.execute(sql.raw(`alter table sensor_readings ${mode === 'on' ? 'enable' : 'disable'} trigger sensor_readings_rollups`))
      const payloads = Array.from({ length: batches }, () => JSON.stringify({ readings: batch() }))
      let next = 0
      let accepted = 0
      const t0 = performance.now()
      await Promise.all(Array.from({ length: 4 }, async () => {
        for (let i = next++; i < payloads.length; i = next++) {
          const res = await fetch(`${base}/api/ingest/readings`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: payloads[i] })
          if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`)
          accepted += ((await res.json()) as { accepted: number }).accepted
        }
      }))
      const httpRate = Math.round(accepted / ((performance.now() - t0) / 1000))
      const spread = await storeRate(batch)
      const gateway = await storeRate(gatewayBatch)
      results[mode].http.push(httpRate)
      results[mode].store.push(spread)
      results[mode].storeGateway.push(gateway)
      results[mode].load.push(load())
      log(`ingest round ${r + 1} (rollups ${mode}): ${httpRate} readings/s through HTTP + evaluation; stored alone ${spread} readings/s (1,000 units × 1 minute), ${gateway} (100 units × 10 minutes); load ${load().join(' ')}`)
    }
  } finally {
    await db.execute(sql`alter table sensor_readings enable trigger sensor_readings_rollups`)
    await app.close()
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  return {
    batches,
    rounds,
    on: results.on,
    off: results.off,
    httpRatio: ratio(median(results.on.http), median(results.off.http), 3),
    storeRatio: ratio(median(results.on.store), median(results.off.store), 3),
    storeGatewayRatio: ratio(median(results.on.storeGateway), median(results.off.storeGateway), 3)
  }
}

async function main (): Promise<void> {
  log(`machine: ${JSON.stringify(results.machine)}`)
  if (PHASES.has('a')) results.a = await withDatabase('a', (d) => dashboardAndReports('a', d, 1000, 24, 60))
  if (PHASES.has('b')) results.b = await withDatabase('b', (d) => dashboardAndReports('b', d, 100, 93 * 24, 300))
  if (PHASES.has('c')) results.c = await withDatabase('c', report93Thousand)
  if (PHASES.has('ingest')) results.ingest = await withDatabase('ingest', ingestion)
  for (const phase of ['a', 'b'] as const) {
    const list = results[phase] as Row[] | undefined
    if (!list) continue
    console.log(`\n## ${phase === 'a' ? '1,000 units, 24 h of 1-minute readings' : '100 units, 93 days of 5-minute readings'}\n`)
    console.log(markdownTable(['query', 'raw p50 ms', 'raw max ms', 'rollups p50 ms', 'rollups p99 ms', 'speed-up (p50)', 'load avg'],
      list.map((r) => [r.query, r.raw?.p50 ?? null, r.raw?.max ?? null, r.rollups.p50, r.rollups.p99, r.speedup, r.load.join(' ')])))
  }
  if (results.c) console.log(`\n## 93-day report, 1,000 units\n\n${JSON.stringify(results.c, null, 2)}`)
  if (results.ingest) console.log(`\n## Ingestion\n\n${JSON.stringify(results.ingest, null, 2)}`)
  log(`wrote ${writeResult('rollups.json', results)}`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
