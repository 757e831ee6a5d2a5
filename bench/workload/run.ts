import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { operations } from '../../web/src/generated/openapi.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { createTokenService } from '../../src/features/auth/tokens.js'
import { queryTypeNames as queryTypes, type QueryType } from '../../src/features/dashboard/query-types.js'
import { createRng, deriveSeed } from '../../src/tools/random.js'
import type { SeededOrg } from './dataset.js'
import { createHttpClient, type HttpClient } from './http.js'
import { createRecorder, type RecorderSummary } from './latency.js'
import { writersWarmupMs, type Workload } from './options.js'
import { rates, type PgRates, type PgStats } from './pg-stats.js'
import { delta, deltaBy, fractionAtOrBelow, histogramDelta, histogramQuantile, mergeScrapes, parsePrometheus, type Scrape } from './prom.js'
import { createViewerFleet, type ViewerOrg } from './viewers.js'
import { createWriterFleet, type WriterDevice } from './writers.js'

export interface RunOptions {
  label: string
  workload: Workload
  targets: string[]
  /** Processes scraped for /metrics besides the targets (a worker of its own: its evaluation, invalidation and refresh figures). */
  alsoScrape?: string[]
  orgs: SeededOrg[]
  jwtSecret: string
  confirmMinutes: number
  /** PostgreSQL statistics of the targets' database, when the caller knows it. */
  pgStats?: PgStats
  /** Runs at the end of the measured window, before the clients stop (e.g. Redis memory while the cache is full). */
  atEnd?: () => Promise<void>
  log: (line: string) => void
}

const ms = (seconds: number | null) => seconds === null ? null : Math.round(seconds * 1e6) / 1e3
const LOOP_RESOLUTION_MS = 10
/** monitorEventLoopDelay counts the timer's own interval in every sample: what is left is the delay. */
const lateMs = (ns: number) => Math.max(0, Math.round((ns / 1e6 - LOOP_RESOLUTION_MS) * 1000) / 1000)

/** Each process's /metrics, one page per target. */
async function scrapeEach (http: HttpClient, targets: string[]): Promise<Scrape[]> {
  return Promise.all(targets.map(async (t) => {
    const r = await http.get(`${t}/metrics`)
    if (r.status !== 200) throw new Error(`${t}/metrics answered ${r.status}`)
    return parsePrometheus(r.body)
  }))
}
const scrape = async (http: HttpClient, targets: string[]): Promise<Scrape> => mergeScrapes(await scrapeEach(http, targets))

/**
 * The service's own event-loop delay over the window, the worst of its processes: prom-client's
 * nodejs_eventloop_lag_* gauges, which it computes from monitorEventLoopDelay (10 ms resolution, as the
 * simulator's) and resets at every scrape, so the first scrape after the window covers exactly the window.
 */
function serviceLoopDelay (pages: Scrape[]): { p50: number, p99: number, max: number } {
  const worst = (name: string) => Math.max(0, ...pages.map((p) => p.get(name)?.[0]?.value ?? 0))
  return {
    p50: lateMs(worst('nodejs_eventloop_lag_p50_seconds') * 1e9),
    p99: lateMs(worst('nodejs_eventloop_lag_p99_seconds') * 1e9),
    max: lateMs(worst('nodejs_eventloop_lag_max_seconds') * 1e9)
  }
}

// The API's own types, generated from its OpenAPI document (web/src/generated/openapi.ts).
type Json<Op extends keyof operations> = operations[Op]['responses'] extends Record<200, { content: { 'application/json': infer T } }> ? T : never

async function getJson<T> (http: HttpClient, url: string, token: string): Promise<T> {
  const r = await http.get(url, { authorization: `Bearer ${token}` })
  if (r.status !== 200) throw new Error(`GET ${url} answered ${r.status}: ${r.body.slice(0, 200)}`)
  return JSON.parse(r.body) as T
}

/**
 * One measured run against running coldboard instances, over HTTP and Socket.io only: writers alone for a warm-up
 * and then `writersOnlySeconds` (PostgreSQL's write-only rate), then the viewers join; after one poll period of
 * warm-up (dashboards are already open when measuring starts) the window of `durationSeconds` is measured.
 */
export async function runWorkload (o: RunOptions) {
  const w = o.workload
  const rng = createRng(deriveSeed(w.seed, 0x5e))
  const tokens = createTokenService(o.jwtSecret, { maxTtlMs: 30 * 86_400_000 })
  const http = createHttpClient()
  const recorder = createRecorder()
  const viewerOrgs: ViewerOrg[] = []
  const devices: WriterDevice[] = []
  let silent = 0
  for (const org of o.orgs) {
    const token = tokens.sign({ sub: 'workload-viewer', orgs: { [org.orgId]: 'viewer' } }, 24 * 3600_000)
    const base = `${o.targets[0]}/api/orgs/${org.orgId}`
    const units = await getJson<Json<'listUnits'>>(http, `${base}/units`, token)
    const devs = await getJson<Json<'listDevices'>>(http, `${base}/devices`, token)
    const byId = new Map(units.filter((u) => u.isActive).map((u) => [u.id, u]))
    viewerOrgs.push({ orgId: org.orgId, token, unitIds: [...byId.keys()] })
    for (const d of devs) {
      const u = byId.get(d.unitId)
      // Sensors the seeded history left offline are dead: they stay silent, as dead sensors do.
      if (!u || d.status !== 'online') { silent++; continue }
      devices.push({ deviceEui: d.deviceEui, apiKey: org.apiKey, tempMin: u.tempMin, tempMax: u.tempMax, state: u.state })
    }
  }
  const writers = createWriterFleet({
    targets: o.targets,
    devices: rng.shuffle(devices),
    intervalMs: w.readingIntervalSeconds * 1000,
    outOfRange: w.outOfRange,
    confirmReadings: Math.max(1, Math.round((o.confirmMinutes * 60) / w.readingIntervalSeconds)),
    http,
    rng
  })
  const viewers = createViewerFleet({ targets: o.targets, orgs: viewerOrgs, viewersPerOrg: w.viewersPerOrg, pollMs: w.pollSeconds * 1000, http, recorder, random: () => rng.next() })
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS })
  o.log(`${o.label}: ${writers.devices} writers (${silent} dead sensors silent), ${viewers.size} viewers`)

  try {
    writers.start()
    // The first seconds are a ramp (connections open, the queue worker's first jobs): measured from 5 s in, the
    // write-only rate was 14 transactions/s higher than over the whole phase, all of which went to "dashboard reads".
    await sleep(writersWarmupMs(w))
    const s0 = await o.pgStats?.snapshot()
    await sleep(w.writersOnlySeconds * 500)
    const sHalf = await o.pgStats?.snapshot()
    await sleep(w.writersOnlySeconds * 500)
    const s1 = await o.pgStats?.snapshot()
    await viewers.connect()
    viewers.startPolling()
    await sleep(w.pollSeconds * 1000)
    const m0 = await scrape(http, [...o.targets, ...(o.alsoScrape ?? [])])
    const s2 = await o.pgStats?.snapshot()
    recorder.start()
    loop.enable()
    const started = performance.now()
    o.log(`${o.label}: measuring for ${w.durationSeconds} s`)
    await sleep(w.durationSeconds * 1000)
    recorder.stop()
    loop.disable()
    const seconds = (performance.now() - started) / 1000
    const pages1 = await scrapeEach(http, [...o.targets, ...(o.alsoScrape ?? [])])
    const m1 = mergeScrapes(pages1)
    const s3 = await o.pgStats?.snapshot()
    await o.atEnd?.()
    await viewers.stop()
    await writers.stop()

    const hits = delta(m0, m1, 'dashboard_cache_hit_total')
    // Of the hits, those answered from the instance's in-process copy (no Redis round trip).
    const localHits = delta(m0, m1, 'dashboard_cache_local_hit_total')
    const misses = delta(m0, m1, 'dashboard_cache_miss_total')
    const bypasses = delta(m0, m1, 'dashboard_cache_bypass_total')
    // A read that joined a load in flight waited like a miss: never counted as a hit.
    const coalesced = delta(m0, m1, 'dashboard_cache_coalesced_total')
    const reads = hits + misses + coalesced + bypasses
    const inv = histogramDelta(m0, m1, 'dashboard_cache_invalidation_seconds')
    const emitDelay = histogramDelta(m0, m1, 'coldboard_change_emit_delay_seconds')
    let database: {
      writersOnly: PgRates
      /** Half the difference between the two halves of the writers-only window: how far the subtracted rate can be off. */
      writersOnlySpread: number
      measured: PgRates
      readsPerSecond: { transactions: number, rowsRead: number, statements: number | null }
    } | null = null
    if (s0 && sHalf && s1 && s2 && s3) {
      const writersOnly = rates(s0, s1)
      const measured = rates(s2, s3)
      database = {
        writersOnly,
        writersOnlySpread: Math.round(Math.abs(rates(s0, sHalf).transactionsPerSecond - rates(sHalf, s1).transactionsPerSecond) * 5) / 10,
        measured,
        readsPerSecond: {
          transactions: Math.max(0, Math.round((measured.transactionsPerSecond - writersOnly.transactionsPerSecond) * 10) / 10),
          rowsRead: Math.max(0, Math.round(measured.rowsReadPerSecond - writersOnly.rowsReadPerSecond)),
          statements: measured.readStatementsPerSecond
        }
      }
    }
    const clients: RecorderSummary = recorder.summary()
    return {
      label: o.label,
      targets: o.targets,
      seconds: Math.round(seconds * 10) / 10,
      clients,
      viewers: viewers.stats(),
      writers: { ...writers.stats(), excursionStartProbability: Math.round(writers.excursionStartProbability * 1e4) / 1e4 },
      service: {
        hits,
        localHits,
        misses,
        coalesced,
        bypasses: deltaBy(m0, m1, 'dashboard_cache_bypass_total', 'reason'),
        refreshes: deltaBy(m0, m1, 'dashboard_cache_refresh_total', 'reason'),
        hitRate: reads > 0 ? Math.round((hits / reads) * 10_000) / 10_000 : null,
        dashboardRequests: reads,
        dbLoads: deltaBy(m0, m1, 'dashboard_db_load_total', 'query_type'),
        dbLoadsTotal: delta(m0, m1, 'dashboard_db_load_total'),
        invalidation: {
          count: inv.count,
          p50Ms: ms(histogramQuantile(inv, 0.5)),
          p99Ms: ms(histogramQuantile(inv, 0.99)),
          shareUnder5Ms: fractionAtOrBelow(inv, 0.005),
          buckets: inv.buckets.map((b) => ({ leMs: b.le === Infinity ? 'Infinity' : ms(b.le), count: b.count }))
        },
        eventsEmitted: deltaBy(m0, m1, 'coldboard_events_emitted_total', 'event'),
        // COMMIT to emit: the invalidation plus the wait for the refresh of what it deleted.
        emitDelay: { count: emitDelay.count, p50Ms: ms(histogramQuantile(emitDelay, 0.5)), p99Ms: ms(histogramQuantile(emitDelay, 0.99)) },
        // What a load costs PostgreSQL-side, per query type (the overview's includes its compliance scans).
        dbLoadMs: Object.fromEntries(queryTypes.map((qt) => {
          const h = histogramDelta(m0, m1, 'dashboard_db_load_seconds', (l) => l.query_type === qt)
          return [qt, { n: h.count, p50: ms(histogramQuantile(h, 0.5)), p99: ms(histogramQuantile(h, 0.99)) }]
        })) as Record<QueryType, { n: number, p50: number | null, p99: number | null }>,
        // Server-side view of the same requests (dashboard_request_seconds, bucket-interpolated): no client in it.
        requestMs: Object.fromEntries((['hit', 'miss', 'bypass'] as const).map((outcome) => {
          const h = histogramDelta(m0, m1, 'dashboard_request_seconds', (l) => l.cache === outcome)
          return [outcome, { n: h.count, p50: ms(histogramQuantile(h, 0.5)), p99: ms(histogramQuantile(h, 0.99)) }]
        })) as Record<'hit' | 'miss' | 'bypass', { n: number, p50: number | null, p99: number | null }>
      },
      database,
      simulatorEventLoopDelayMs: { p50: lateMs(loop.percentile(50)), p99: lateMs(loop.percentile(99)), max: lateMs(loop.max) },
      /** Absent from reports written before it was measured. */
      serviceEventLoopDelayMs: serviceLoopDelay(pages1) as { p50: number, p99: number, max: number } | undefined,
      samples: recorder.samples()
    }
  } finally {
    await viewers.stop().catch(() => {})
    await writers.stop().catch(() => {})
    http.close()
  }
}
export type RunResult = Awaited<ReturnType<typeof runWorkload>>
