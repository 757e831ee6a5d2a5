/**
 * Times the dashboard queries and the compliance report on one organization with 1,000 units and 24 h of
 * 1-minute readings (1.44 M rows), and prints their EXPLAIN (ANALYZE, BUFFERS) plans and a JSON summary.
 *
 *   npx tsx bench/dashboard-queries.ts [--keep] [--runs 20] [--units 1000] [--minutes 1440] [--history-hours 0]
 *                                      [--url postgres://postgres@127.0.0.1:5432/postgres]
 *
 * Creates (drop + create) the database cb_bench_queries on the server, migrates it like production, loads it with
 * server-side INSERT … SELECT, and drops it at the end unless --keep. --history-hours adds older readings before
 * the 24 h window, as a table holding more than one day has. A last phase tries the index that docs/database.md
 * proposes for the trends (unit_id, recorded_at) INCLUDE (temperature).
 */
import os from 'node:os'
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import pg from 'pg'
import { sql, type SQL } from 'drizzle-orm'
import { createDatabase, rows, type Database, type Db } from '../src/infra/postgres.js'
import { manualClock } from '../src/lib/clock.js'
import { createDashboardQueries, dashboardSql, dashboardWindow } from '../src/features/dashboard/queries.js'
import { complianceDaysSql, createReportsService } from '../src/features/reports/service.js'

const { values: args } = parseArgs({
  options: {
    keep: { type: 'boolean', default: false },
    runs: { type: 'string', default: '20' },
    units: { type: 'string', default: '1000' },
    minutes: { type: 'string', default: '1440' },
    'history-hours': { type: 'string', default: '0' },
    url: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' }
  }
})
const RUNS = Number(args.runs)
const UNITS = Number(args.units)
const MINUTES = Number(args.minutes)
const TOTAL_MINUTES = MINUTES + 60 * Number(args['history-hours'])
for (const [name, value] of Object.entries({ runs: RUNS, units: UNITS, minutes: MINUTES, 'history-hours': TOTAL_MINUTES - MINUTES })) {
  if (!Number.isInteger(value) || value < 0 || (name !== 'history-hours' && value === 0)) {
    console.error(`--${name} must be a positive integer`)
    process.exit(2)
  }
}
const DB_NAME = 'cb_bench_queries'
const adminUrl = args.url
const benchUrl = (() => { const u = new URL(adminUrl); u.pathname = `/${DB_NAME}`; return u.toString() })()

async function admin (text: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try { await client.query(text) } finally { await client.end() }
}

const log = (msg: string) => console.error(`[bench] ${msg}`)

async function timed<T> (label: string, fn: () => Promise<T>): Promise<T> {
  const t = performance.now()
  const out = await fn()
  log(`${label}: ${((performance.now() - t) / 1000).toFixed(1)} s`)
  return out
}

/** One organization: 20 sites, UNITS units (a fifth freezers, a few inactive, some not normal), a device each, alerts, readings. */
async function load (db: Db, end: Date): Promise<string> {
  const [org] = await rows<{ id: string }>(db, sql`insert into organizations (name, slug) values ('Bench org', 'bench-org') returning id`)
  const orgId = org!.id
  await db.execute(sql`insert into sites (organization_id, name) select ${orgId}, 'Site ' || s from generate_series(1, 20) s`)
  await db.execute(sql`
    with s as (select id, row_number() over (order by name) - 1 as rn from sites where organization_id = ${orgId})
    insert into units (organization_id, site_id, name, unit_type, temp_min, temp_max, state, is_active, last_reading_at, last_temperature)
    select ${orgId}, s.id, 'Unit ' || lpad(i::text, 5, '0'),
      (case when i % 5 = 0 then 'freezer' else 'fridge' end)::unit_type,
      case when i % 5 = 0 then -25 else 2 end, case when i % 5 = 0 then -15 else 8 end,
      (case when i % 100 = 1 then 'offline' when i % 50 = 2 then 'too_hot' when i % 50 = 3 then 'too_cold' else 'normal' end)::unit_state,
      i % 200 <> 0, ${end.toISOString()}::timestamptz, 5
    from generate_series(1, ${UNITS}) i join s on s.rn = i % 20`)
  await db.execute(sql`
    insert into devices (organization_id, unit_id, device_eui, status, last_seen_at, battery)
    select organization_id, id, 'bench-' || id, (case when state = 'offline' then 'offline' else 'online' end)::device_status,
      ${end.toISOString()}::timestamptz, 90
    from units where organization_id = ${orgId}`)
  // An open alert per unit that is not normal, and 5 resolved ones per unit over the last 30 days.
  await db.execute(sql`
    insert into alerts (organization_id, unit_id, type, severity, status, triggered_at)
    select organization_id, id, (case when state = 'offline' then 'offline' else 'temperature_excursion' end)::alert_type,
      (case when state = 'too_hot' then 'critical' else 'warning' end)::alert_severity,
      (case when state = 'too_cold' then 'acknowledged' else 'active' end)::alert_status,
      ${end.toISOString()}::timestamptz - interval '20 minutes'
    from units where organization_id = ${orgId} and state <> 'normal'`)
  await db.execute(sql`
    insert into alerts (organization_id, unit_id, type, severity, status, triggered_at, resolved_at)
    select u.organization_id, u.id, 'temperature_excursion', 'warning', 'resolved',
      ${end.toISOString()}::timestamptz - make_interval(hours => k * 140), ${end.toISOString()}::timestamptz - make_interval(hours => k * 140 - 1)
    from units u cross join generate_series(0, 4) k where u.organization_id = ${orgId}`)
  // Readings arrive in time order, interleaved across units, as ingestion writes them: a slow sine around the
  // middle of the range plus noise, so that a few percent fall outside the thresholds.
  await db.execute(sql`
    insert into sensor_readings (organization_id, unit_id, device_id, temperature, recorded_at, received_at)
    select u.organization_id, u.id, d.id,
      round(((u.temp_min + u.temp_max) / 2 + (u.temp_max - u.temp_min) / 2 * 0.9 * sin(m / 90.0 + u.phase)
        + (random() - 0.5) * 1.5)::numeric, 2),
      ${end.toISOString()}::timestamptz - make_interval(mins => ${TOTAL_MINUTES} - m),
      ${end.toISOString()}::timestamptz - make_interval(mins => ${TOTAL_MINUTES} - m) + interval '2 seconds'
    from generate_series(1, ${TOTAL_MINUTES}) m
    cross join (select id, organization_id, temp_min, temp_max, (abs(hashtext(id::text)) % 628) / 100.0 as phase
      from units where organization_id = ${orgId}) u
    join devices d on d.unit_id = u.id
    order by m, u.id`)
  return orgId
}

interface Timing { p50: number, p95: number, min: number, max: number, runs: number }

function summarize (ms: number[]): Timing {
  const s = [...ms].sort((a, b) => a - b)
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!
  const r = (x: number) => Math.round(x * 100) / 100
  return { p50: r(at(0.5)), p95: r(at(0.95)), min: r(s[0]!), max: r(s.at(-1)!), runs: s.length }
}

/** 3 warm-up calls, then RUNS timed calls; `i` lets per-unit queries rotate over units. */
async function measure (fn: (i: number) => Promise<unknown>): Promise<Timing> {
  for (let i = 0; i < 3; i++) await fn(i)
  const ms: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now()
    await fn(i + 3)
    ms.push(performance.now() - t)
  }
  return summarize(ms)
}

async function explain (db: Db, query: SQL): Promise<string> {
  const plan = await rows<{ 'QUERY PLAN': string }>(db, sql`explain (analyze, buffers) ${query}`)
  return plan.map((r) => r['QUERY PLAN']).join('\n')
}

async function timeAll (database: Database, orgId: string, unitIds: string[], end: Date): Promise<Record<string, Timing>> {
  const clock = manualClock(end)
  const q = createDashboardQueries({ db: database.db, clock })
  const reports = createReportsService({ db: database.db, clock, statementTimeoutMs: 600_000, concurrencyPerOrg: 100 })
  const unit = (i: number) => unitIds[(i * 37) % unitIds.length]!
  return {
    unitsStatus: await measure(() => q.unitsStatus(orgId)),
    alertsCount: await measure(() => q.alertsCount(orgId)),
    alertsCountUnit: await measure((i) => q.alertsCount(orgId, unit(i))),
    devicesOnline: await measure(() => q.devicesOnline(orgId)),
    temperatureTrends: await measure((i) => q.temperatureTrends(orgId, unit(i))),
    compliancePercentage: await measure(() => q.compliancePercentage(orgId)),
    stats: await measure(() => q.stats(orgId)),
    statsGivenCompliance: await measure(() => q.stats(orgId, { compliancePercentage: 99.5 })),
    complianceReport24h: await measure(() => reports.compliance(orgId))
  }
}

function printTable (title: string, t: Record<string, Timing>): void {
  console.log(`\n## ${title}\n| query | p50 ms | p95 ms | min ms | max ms |\n|---|---:|---:|---:|---:|`)
  for (const [k, v] of Object.entries(t)) console.log(`| ${k} | ${v.p50} | ${v.p95} | ${v.min} | ${v.max} |`)
}

async function main (): Promise<void> {
  await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`)
  await admin(`CREATE DATABASE ${DB_NAME}`)
  const database = await createDatabase({ databaseUrl: benchUrl, dataDir: '.coldboard-bench', poolMax: 4 })
  try {
    await timed('migrate', () => database.migrate())
    const db = database.db
    // The load must not race an autovacuum: the first timings are "right after a burst of inserts".
    await db.execute(sql`alter table sensor_readings set (autovacuum_enabled = false)`)
    const end = new Date(Math.floor(Date.now() / 60_000) * 60_000)
    const orgId = await timed(`load ${UNITS} units, ${UNITS * TOTAL_MINUTES} readings`, () => load(db, end))
    await timed('analyze', () => db.execute(sql`analyze`))
    const unitIds = (await rows<{ id: string }>(db, sql`select id from units where organization_id = ${orgId} and is_active order by id`)).map((r) => r.id)

    const [info] = await rows<{ version: string, table_mb: number, indexes: string }>(db, sql`
      select version(),
        round(pg_table_size('sensor_readings') / 1048576.0)::int as table_mb,
        (select string_agg(indexrelname || '=' || round(pg_relation_size(indexrelid) / 1048576.0)::int || 'MB', ', ' order by indexrelname)
          from pg_stat_user_indexes where relname = 'sensor_readings') as indexes`)
    const settings = await rows<{ name: string, setting: string }>(db, sql`
      select name, setting from pg_settings where name in ('shared_buffers', 'work_mem', 'jit', 'max_parallel_workers_per_gather', 'random_page_cost')`)

    const afterAnalyze = await timeAll(database, orgId, unitIds, end)
    printTable('After ANALYZE only (visibility map not yet set: index-only scans visit the heap)', afterAnalyze)

    await timed('vacuum (analyze)', () => db.execute(sql`vacuum (analyze)`))
    await db.execute(sql`alter table sensor_readings reset (autovacuum_enabled)`)
    const afterVacuum = await timeAll(database, orgId, unitIds, end)
    printTable('After VACUUM (steady state: autovacuum keeps the visibility map of an insert-only table set)', afterVacuum)

    const w = dashboardWindow(end)
    const sampleUnit = unitIds[0]!
    const plans: Record<string, SQL> = {
      unitsStatus: dashboardSql.unitsStatus(orgId),
      alertsCount: dashboardSql.alertsCount(orgId),
      alertsCountUnit: dashboardSql.unitAlertsCount(orgId, sampleUnit),
      devicesOnline: dashboardSql.devicesOnline(orgId),
      temperatureTrends: dashboardSql.temperatureTrends(orgId, [sampleUnit], w),
      compliancePercentage: dashboardSql.compliance(orgId, w),
      stats: dashboardSql.stats(orgId, w),
      statsGivenCompliance: dashboardSql.stats(orgId, null),
      complianceReport24h: complianceDaysSql(orgId, new Date(end.getTime() - 24 * 3600_000), end)
    }
    for (const [name, query] of Object.entries(plans)) {
      console.log(`\n## EXPLAIN (ANALYZE, BUFFERS) ${name}\n\`\`\`\n${await explain(db, query)}\n\`\`\``)
    }

    // The proposed index: the trend of one unit becomes an index-only scan instead of one heap page per reading.
    await timed('create index (unit_id, recorded_at) include (temperature)', () => db.execute(sql`
      create index sensor_readings_unit_recorded_temp_idx on sensor_readings (unit_id, recorded_at) include (temperature)`))
    await db.execute(sql`drop index sensor_readings_unit_recorded_idx`)
    await db.execute(sql`vacuum (analyze) sensor_readings`)
    const q = createDashboardQueries({ db, clock: manualClock(end) })
    const proposed = {
      temperatureTrends: await measure((i) => q.temperatureTrends(orgId, unitIds[(i * 37) % unitIds.length]!))
    }
    printTable('With the proposed index (unit_id, recorded_at) INCLUDE (temperature) in place of (unit_id, recorded_at)', proposed)
    const [size] = await rows<{ mb: number }>(db, sql`select round(pg_relation_size('sensor_readings_unit_recorded_temp_idx') / 1048576.0)::int as mb`)
    console.log(`\nproposed index size: ${size!.mb} MB`)
    console.log(`\n## EXPLAIN (ANALYZE, BUFFERS) temperatureTrends with the proposed index\n\`\`\`\n${await explain(db, plans.temperatureTrends!)}\n\`\`\``)

    console.log('\n## Summary\n```json')
    console.log(JSON.stringify({
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memoryGb: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadAvg: os.loadavg().map((l) => Math.round(l * 100) / 100) },
      postgres: { version: info!.version, settings: Object.fromEntries(settings.map((s) => [s.name, s.setting])) },
      dataset: { units: UNITS, windowMinutes: MINUTES, readings: UNITS * TOTAL_MINUTES, tableMb: info!.table_mb, indexes: info!.indexes },
      runsPerQuery: RUNS,
      timingsMs: { afterAnalyze, afterVacuum, proposedTrendsIndex: proposed }
    }, null, 2))
    console.log('```')
  } finally {
    await database.close()
    if (!args.keep) await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`)
    else log(`kept ${benchUrl}`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
