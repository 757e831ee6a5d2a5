import { panels } from '../workload/latency.js'
import { pairedRatio } from '../lib/stats.js'
import { BATCH_MAX_ENTRIES } from '../../src/features/dashboard/read-through.js'
import type { Report } from './report.js'

const pct = (x: number | null | undefined) => x === null || x === undefined ? '–' : `${(x * 100).toFixed(1)} %`

/** Throughput lost (positive) or gained at each step from the bare route to coldboard's hit. */
function hitPathSteps (r: Report): Array<{ label: string, loss: number }> {
  const b = r.hitPath.breakdown
  const get = r.hitPath.cacheConnectionAutoPipelining ? b.appAuthIoredisAutoPipelined : b.appAuthIoredisGet
  const chain: Array<[string, number]> = [
    ['bare route', r.hitPath.bare.reqPerSec],
    ['the app\'s hooks on a route outside /api', b.appPublicConstant.reqPerSec],
    ['an /api route\'s own work (security headers, authentication, :orgId authorization)', b.appAuthConstant.reqPerSec],
    [`a Redis GET (ioredis${r.hitPath.cacheConnectionAutoPipelining ? ', auto-pipelined like coldboard\'s cache connection' : ''})`, get.reqPerSec],
    ['coldboard\'s dashboard route and cache service', r.hitPath.coldboard.reqPerSec]
  ]
  return chain.slice(1).map(([label, v], i) => ({ label, loss: chain[i]![1] > 0 ? 1 - v / chain[i]![1] : 0 }))
}
const autoGain = (r: Report) => r.hitPath.breakdown.appAuthIoredisGet.reqPerSec > 0
  ? r.hitPath.breakdown.appAuthIoredisAutoPipelined.reqPerSec / r.hitPath.breakdown.appAuthIoredisGet.reqPerSec - 1
  : null
/** The cache-on p99 of polls against refetches after an event (absent from reports written before it was measured). */
function byKindNote (r: Report): string {
  const k = (r.latencyMs as { cachedByKind?: Record<'poll' | 'refetch', { p99: number, n: number }> }).cachedByKind
  if (!k || k.poll.n === 0 || k.refetch.n === 0) return ''
  return `By why the viewer asked: polls p99 ${k.poll.p99} ms, refetches after an event p99 ${k.refetch.p99} ms (they arrive together, the moment the event is emitted). `
}
/** Each round's p99, in round order. */
export const p99s = (t: { runs: Array<{ p99: number }> }) => t.runs.map((x) => x.p99).join(', ')
const signed = (loss: number) => `${loss > 0 ? '−' : '+'}${pct(Math.abs(loss))}`

/**
 * The reduction no cache can beat with this TTL: every watched entry is loaded at least once per TTL, events or none
 * (an organization's four count panels read together share one statement, each viewer's trend has its own), against
 * the loads of the cache-off run.
 */
function ttlFloor (r: Report): string {
  const w = r.workload
  const trends = Math.min(w.viewersPerOrg, w.units)
  // An organization's watched trends are reloaded ahead together (read-through.ts reloadAhead: one statement for up to
  // BATCH_MAX_ENTRIES units), and so are its count panels.
  const trendStatements = Math.ceil(trends / BATCH_MAX_ENTRIES)
  const statements = w.orgs * (1 + trendStatements)
  const floor = statements / r.workload.cacheTtlSeconds
  const off = r.dbStats.serviceCountedLoadsPerSecond.uncached
  if (!off) return ''
  return `The floor, whatever invalidation does: ${statements.toLocaleString('en-US')} statements (${w.orgs} organizations × (1 for the 4 count panels + ${trendStatements} for the ${trends} watched trends, each family reloaded ahead in one statement)) each run once per ${r.workload.cacheTtlSeconds} s TTL is ${floor.toFixed(1)} loads/s, ` +
    `${pct(floor / off)} of the cache-off run's ${off} loads/s: with this TTL the reduction cannot pass ${pct(1 - floor / off)} even with no events at all.`
}

/**
 * What no cache behind the app's hooks can beat: the same /api route sending the payload as a constant. Where a
 * peer's read comes out faster than that route in a round, the ratio measured the machine, not the read.
 */
function ceilingNote (r: Report, named: Array<[string, Report['hitPath']['coldboard']]>): string {
  const ceiling = r.hitPath.breakdown.appAuthConstant
  const perRound = (runs: Array<{ reqPerSec: number }>) => runs.map((x, i) => (ceiling.runs[i]?.reqPerSec ?? 0) > 0 ? (x.reqPerSec / ceiling.runs[i]!.reqPerSec).toFixed(2) : '–').join(', ')
  const beatConstant = [['coldboard', r.hitPath.coldboard] as const, ...named].filter(([, p]) => p.runs.some((x, i) => x.reqPerSec > (ceiling.runs[i]?.reqPerSec ?? Infinity)))
  return `The ceiling for a cached read behind these hooks is the same route sending the payload as a constant: coldboard's hit ran at ${pairedRatio(r.hitPath.coldboard.runs, ceiling.runs)} × it (per round: ${perRound(r.hitPath.coldboard.runs)}), ` +
    named.map(([n, p]) => `${n} at ${pairedRatio(p.runs, ceiling.runs)} × (per round: ${perRound(p.runs)})`).join(', ') + '. ' +
    (beatConstant.length > 0 ? `${beatConstant.map(([n]) => n).join(' and ')} beat the constant itself in some rounds, which no read can do: at this spread between rounds a ratio between two reads measures the machine as much as the reads.` : '')
}

/**
 * What each route costs the server's main thread per request (median round), against the throughput ratio: the two
 * disagree when a route that waits on Redis lets the event loop take other connections' requests meanwhile.
 */
function cpuNote (r: Report, faster: Array<[string, { mainThreadUs?: number }]>): string {
  const own = r.hitPath.coldboard.mainThreadUs
  const measured = faster.filter(([, p]) => p.mainThreadUs !== undefined && p.mainThreadUs > 0)
  if (own === undefined || own <= 0 || measured.length === 0) {
    return 'What would close it: a CPU profile of the in-process hit under autocannon, and less work per hit on the route. '
  }
  const constant = r.hitPath.breakdown.appAuthConstant.mainThreadUs
  const costs = `coldboard's hit costs the server's main thread ${own} µs per request (median round), ` +
    measured.map(([n, p]) => `${n}'s read ${p.mainThreadUs} µs`).join(', ') +
    (constant ? `, the same route sending a constant ${constant} µs` : '')
  const cheaper = measured.filter(([, p]) => own < p.mainThreadUs!)
  if (cheaper.length === measured.length) {
    return `${costs}: coldboard's hit is the cheaper read per request, yet served fewer requests per second in the rounds that decide the ratio. ` +
      'Throughput at this many connections on 2 cores is not a route\'s CPU alone (the speed of the machine between rounds, and how a route that waits on Redis lets the loop take other connections meanwhile, both enter it; neither is measured apart). ' +
      'The figure that the bar compares is throughput, so the bar is reported missed. ' +
      'A CPU profile against the constant route (2026-12-07) puts coldboard\'s own per-hit work (the read-through, the request histogram and counters, the headers) at about 7 % of the main thread\'s samples, and the socket write at about half. '
  }
  return `${costs}: coldboard's route spends more CPU per request than the peer. What would close it: less work per hit on the route (the read-through's checks, the request histogram and counters, the headers schema). `
}

/** The closing note: for each missed bar, what the figures say caused it and what would close it. */
export function closingNotes (r: Report): string[] {
  const missed = r.bars.filter((b) => !b.met)
  const out: string[] = []
  if (r.smoke) out.push('*Smoke run: a few seconds on a toy dataset. The figures below say nothing about coldboard; run the full benchmark.*', '')
  if (missed.length === 0) return [...out, 'Every bar was met in this run.']
  const on = r.runs.cached
  const misses = on.clients.byKind.poll.miss + on.clients.byKind.refetch.miss
  const refetchMisses = on.clients.byKind.refetch.miss
  const events = Object.values(on.service.eventsEmitted).reduce((a, b) => a + b, 0)
  // Absent from reports written before this run existed (--render-only).
  const before = (r.runs as { refreshOff?: typeof on }).refreshOff

  for (const b of missed) {
    switch (b.id) {
      case 'hitRate': {
        const refreshes = on.service.refreshes
        out.push(`- **Hit rate ${b.measured} (bar ${b.target}).** Misses the clients saw: ${misses.toLocaleString('en-US')} (${pct(misses > 0 ? refetchMisses / misses : null)} of them refetches right after an event); ` +
          `the service counted ${on.service.misses.toLocaleString('en-US')} misses that loaded and ${on.service.coalesced.toLocaleString('en-US')} reads that joined a load in flight. ` +
          `Refreshes with nobody waiting: ${(refreshes.event ?? 0).toLocaleString('en-US')} after events, ${(refreshes.ahead ?? 0).toLocaleString('en-US')} ahead of expiry, ${(refreshes.compliance ?? 0).toLocaleString('en-US')} compliance figures. ` +
          'A refetch still misses when the event\'s reload takes longer than CACHE_REFRESH_WAIT_MS (the emit goes out, the viewer joins the reload: coalesced), and a poll misses on an entry nobody read in its last quarter. ' +
          'What would close it: a longer refresh wait (it adds to the emit delay, bounded by its own bar), or cheaper reloads.')
        break
      }
      case 'dbQueryReduction': {
        const range = r.dbStats.dbQueryReductionRange
        const counted = r.dbStats.serviceCountedLoadsPerSecond
        const stats = r.dbStats.statsReduction
        // The bar takes the smaller figure; when that is pg_stat_database's estimate alone, its noise is the cause to name.
        const estimateOnly = r.dbStats.source === 'pg_stat_database' && counted.reduction !== null && counted.reduction >= 0.95 && stats !== null && stats < counted.reduction
        const left = `What is left with the cache on is one reload per watched entry per event (${events.toLocaleString('en-US')} events; an event's count panels of one organization share one statement), ` +
          'one per watched entry per TTL (refresh ahead) and one compliance figure per watched organization per half TTL: the price of exact invalidation, which scales with the event rate and the number of dashboards open, not with the viewers per dashboard. ' +
          (before ? `Without the refresh (the before, same run) the cache-on service ran ${r.refreshBeforeAfter.serviceCountedLoadsPerSecond.before} loads/s against ${r.refreshBeforeAfter.serviceCountedLoadsPerSecond.after} with it, at a hit rate of ${pct(before.service.hitRate)}: the refresh buys the hits with reloads. ` : '') +
          'A longer CACHE_TTL_SECONDS trades the freshness of what no event announces (trends, compliance) for fewer reloads. ' +
          ttlFloor(r)
        if (estimateOnly && r.dbStats.cached) {
          const c = r.dbStats.cached
          out.push(`- **Database queries ${b.measured} (bar ${b.target}): the estimate's noise.** The figure is pg_stat_database's estimate (between ${range ? `${pct(range[0])} and ${pct(range[1])}` : '–'} within its own spread): ` +
            `${r.dbStats.readsPerSecond.cached} dashboard transactions/s with the cache on, the difference between ${c.measured.transactionsPerSecond} transactions/s in all and ${c.writersOnly.transactionsPerSecond}/s measured while only the writers ran, before the viewers joined (its two ${r.workload.writersOnlySeconds / 2}-second halves differed by ${(c.writersOnlySpread * 2).toFixed(1)}/s). ` +
            `The service counted ${counted.cached} dashboard loads/s itself, each at least one transaction: ${pct(counted.reduction)}, which meets the bar; rows read by dashboard reads fell ${pct(r.dbStats.rowsReadReduction)}. ` +
            'What would close the gap in the measurement: counting the dashboard\'s statements themselves (pg_stat_statements on a PostgreSQL of the benchmark\'s own, since it needs shared_preload_libraries and so a restart), not a difference of two rates. ' +
            left)
        } else if (r.dbStats.source === 'pg_stat_statements') {
          out.push(`- **Database queries ${b.measured} (bar ${b.target}).** PostgreSQL counted ${r.dbStats.readsPerSecond.cached} dashboard statements/s with the cache on against ${r.dbStats.readsPerSecond.uncached}/s off (pg_stat_statements); ` +
            `the service's own counter says ${pct(counted.reduction)}. ` + left)
        } else {
          out.push(`- **Database queries ${b.measured} (bar ${b.target}).** ${range ? `Within the write-only rate's spread the figure lies between ${pct(range[0])} and ${pct(range[1])}; ` : ''}` +
            `the service's own counter says ${pct(counted.reduction)} and rows read by dashboard reads fell ${pct(r.dbStats.rowsReadReduction)}. ` + left)
        }
        break
      }
      case 'cachedP99': {
        const hits = r.latencyMs.cachedHitsOnly.all
        const worst = panels.reduce((a, p) => (r.latencyMs.cached[p].p99 > r.latencyMs.cached[a].p99 ? p : a), panels[0])
        const stats = on.service.dbLoadMs.stats
        const notHits = 1 - (r.hitRate ?? 0)
        out.push(`- **Cached p99 ${b.measured} (bar ${b.target}).** Hits alone: p50 ${hits.p50} ms, p99 ${hits.p99} ms at the client; ${on.service.requestMs.hit.p50 ?? '–'} / ${on.service.requestMs.hit.p99 ?? '–'} ms in the server. ` +
          `Misses: server p99 ${on.service.requestMs.miss.p99 ?? '–'} ms (overview loads p50 ${stats.p50 ?? '–'} ms, p99 ${stats.p99 ?? '–'} ms); worst panel ${worst} (p99 ${r.latencyMs.cached[worst].p99} ms). ` +
          (hits.p99 > 10
            ? `The tail is not the misses (${pct(notHits)} of requests): the hits themselves have it. A hit is the in-process copy (${pct(on.service.hits > 0 ? (on.service.localHits ?? 0) / on.service.hits : null)} of them here) or a Redis GET, and a few hundred microseconds of CPU; its p99 is the time a request waits for a core on 2 cores that run PostgreSQL, Redis, the service's worker and Socket.io emits, and the simulator (its own event-loop delay p99: ${on.simulatorEventLoopDelayMs.p99} ms). ` +
              (on.serviceEventLoopDelayMs ? `The service's own event loop was late by ${on.serviceEventLoopDelayMs.p99} ms at p99 and ${on.serviceEventLoopDelayMs.max} ms at worst over the window: a request that arrives then waits before the server's timer for it even starts (server-side hit p99 ${on.service.requestMs.hit.p99 ?? '–'} ms against ${on.clients.hitsOnly.all.p99} ms at the client). ` : '') +
              byKindNote(r) +
              'CPU profiles of the service under W1 (--cpu-prof, `coldboard simulate`, 90 s measured) put its main thread\'s long busy stretches mostly inside socket writes: on the Intel Xeon 2-core VM (2026-12-07) stretches over 10 ms came 0.4 times a second, 31 % of them in the PostgreSQL client\'s writev; on the AMD EPYC VM (2026-12-08) 5.4 times a second, 36 % in it. On 2 cores, the write that wakes a PostgreSQL backend lets it preempt the service inside the system call, and the requests that arrive meanwhile queue behind it. ' +
              'Cutting a reading\'s PostgreSQL round trips from seven to three besides the API key (one statement to resolve and store, an evaluation in two: docs/database.md#the-write-paths-statements) and its evaluation\'s planning by a third took the service\'s event-loop p99 from 7.8 to 4.7 ms and the server-side hit p99 from 8.9 to 3.3 ms between two runs on the AMD VM (2026-12-08 00:34 and 01:43 UTC), and left the client p99 where it was (24.5 and 23.8 ms). Over such a window the machine is about half idle (W1 via `coldboard simulate`, /proc: 53 of 110 core-seconds idle; the service 35 % of a core, PostgreSQL\'s backends 24 %): the tail is not throughput but the burst an event sets off at once (the commit, the refresh\'s load, the emit to the organization\'s sockets, their refetches and the simulator\'s own work) on 2 cores. ' +
              'What would close it: nothing in the cache — cores of the service\'s own (the simulator and PostgreSQL elsewhere); on these 2 cores the worker in a process of its own (`--worker-process`, as deploy/ runs it) was tried and made hits slower, the extra process competing for the same cores.'
            : `With ${pct(notHits)} of requests not hits, the p99 over every request is a miss's latency whenever that share is above 1 %. ` +
              'What would close it: the hit rate above 99 % (the misses left, above), or misses under 10 ms on this machine.'))
        break
      }
      case 'invalidationP99': {
        const inv = r.invalidationMs
        const none = inv.microbenchmark.find((m) => m.unrelatedKeys === 0)
        out.push(`- **Invalidation: ${b.measured} (bar ${b.target}).** At ${inv.atUnrelatedKeys.keys.toLocaleString('en-US')} unrelated keys the event path — one Lua script over the keys the event names, ` +
          `O(keys affected) — costs p50 ${inv.atUnrelatedKeys.p50} ms, p99 ${inv.atUnrelatedKeys.p99} ms in isolation` +
          (none ? `, against p50 ${none.p50} ms, p99 ${none.p99} ms with none (the keyspace does not enter the script's cost; the p99 of ${none.n} calls is a few of the slowest, and the machine's noise moves it). ` : '. ') +
          `Under W1, event to invalidation complete has p50 ${inv.p50 ?? '–'} ms and ${pct(inv.shareUnder5Ms)} of invalidations under 5 ms; the slowest percent waits for a CPU ` +
          'on 2 cores that also run PostgreSQL, Redis, the worker and the simulator, or behind a running script for the same organization (coalescing). ' +
          'What would close it: nothing in the cache — give the service cores of its own (the load generator elsewhere) and the p99 follows the isolated figure.')
        break
      }
      case 'cacheMBPer1000Orgs': {
        const kinds = Object.entries(r.cacheMemory.byKind).sort((a, b) => b[1].bytes - a[1].bytes)
        const [top, v] = kinds[0] ?? ['–', { keys: 0, bytes: 0 }]
        out.push(`- **Cache ${b.measured} per 1,000 organizations (bar ${b.target}).** ${top} keys hold ${pct(v.bytes / Math.max(1, r.cacheMemory.totalBytes))} of the bytes ` +
          `(${Math.round(v.bytes / Math.max(1, v.keys)).toLocaleString('en-US')} bytes each): a 24 h trend is 288 points of {timestamp, temperature, alarmState} as JSON text. ` +
          'What would close it: store trends compactly (first timestamp + step, temperatures as one array, alarm states run-length encoded: ~2 KB instead of ~20 KB, same response after expansion), ' +
          'or compress cached values above a size threshold (JSON trends compress about 8–10×, at a small CPU cost on each hit).')
        break
      }
      case 'hitThroughputRatio': {
        const steps = hitPathSteps(r)
        const worst = [...steps].sort((x, y) => y.loss - x.loss)[0]!
        out.push(`- **Cached read at ${b.measured} of the bare route (bar ${b.target}).** Measured step by step (the table above): ` +
          steps.map((s) => `${s.label} ${signed(s.loss)}`).join(', ') + `. The largest step is ${worst.label}. ` +
          (steps.indexOf(worst) < 2
            ? 'The app-wide steps run on every request (the JSON security headers, routing, the remembered JWT, the request budget, the :orgId check, the response hooks); a flame graph under autocannon puts most of what is left in Fastify\'s request and reply path and the socket writes. ' +
              'What would close it: fewer hooks per request (authorization folded into one onRequest hook), and the cache read\'s own work'
            : 'What would close it: profile the cache read under autocannon (a flame graph) and trim the per-hit work (the guard\'s latency histogram, the request-duration histogram, the headers schema)') +
          `. Auto-pipelining the GET changed its step's throughput by ${signed(-(autoGain(r) ?? 0))} here, p99 ${p99s(r.hitPath.breakdown.appAuthIoredisAutoPipelined)} ms against ${p99s(r.hitPath.breakdown.appAuthIoredisGet)} ms per round: coldboard's cache connection ${r.hitPath.cacheConnectionAutoPipelining ? 'is' : 'is not'} auto-pipelined on one server.`)
        break
      }
      case 'peers': {
        const faster = Object.entries(r.peers).filter(([, p]) => p.ratioToColdboard > 1)
        const getStep = r.hitPath.cacheConnectionAutoPipelining ? r.hitPath.breakdown.appAuthIoredisAutoPipelined : r.hitPath.breakdown.appAuthIoredisGet
        const auto = getStep.reqPerSec
        const getLabel = r.hitPath.cacheConnectionAutoPipelining ? 'a bare auto-pipelined ioredis GET' : 'a bare ioredis GET'
        const route = hitPathSteps(r).at(-1)!
        // Absent from reports written before it was measured (--render-only).
        const localShare = (r.hitPath as { coldboardLocalShare?: number | null }).coldboardLocalShare
        if (localShare != null && localShare >= 0.99) {
          out.push(`- **A peer was faster on the hit path: ${faster.map(([n, p]) => `${n} ${p.ratioToColdboard} ×`).join(', ')}.** All of them run on coldboard's app behind the same hooks. ` +
            `${pct(localShare)} of coldboard's hits in these rounds were answered from the in-process copy, with no Redis command, while ` +
            faster.map(([n, p]) => `${n}'s read (a GET to Redis, JSON parse and re-serialisation) runs at ${auto > 0 ? (p.reqPerSec / auto).toFixed(2) : '–'} × ${getLabel}`).join('; ') +
            `. coldboard's hit ${route.loss >= 0 ? `takes ${pct(route.loss)} off` : `adds ${pct(-route.loss)} to`} the throughput of ${getLabel}. ` +
            cpuNote(r, faster) +
            'Ratios within a few percent of 1 are inside this machine\'s run-to-run noise (see the rounds). ' +
            ceilingNote(r, faster))
          break
        }
        out.push(`- **A peer was faster on the hit path: ${faster.map(([n, p]) => `${n} ${p.ratioToColdboard} ×`).join(', ')}.** All of them run on coldboard's app behind the same hooks, ` +
          'so the difference is the cache read. ' +
          faster.map(([n, p]) => `${n}'s whole read (its client's GET, JSON parse and re-serialisation included) runs at ${auto > 0 ? (p.reqPerSec / auto).toFixed(2) : '–'} × ${getLabel}`).join('; ') +
          ` (cache-manager through get-then-set: its wrap() would hand a request the answer of a GET sent before the request began, which coldboard's promise across instances forbids). coldboard's route and cache service ${route.loss >= 0 ? `take ${pct(route.loss)} off` : `add ${pct(-route.loss)} to`} the throughput of ${getLabel}. ` +
          'What would close it: a leaner client path for the hit GET — node-redis is 2.15 × ioredis in isolation but 0.45 × with the per-command timeout a cache read needs (bench/redis-clients.ts, docs/caching.md). The per-hit metrics are not it: the hit counter and the two histograms a hit observes cost about 1.3 µs together (prom-client alone, measured), 1–2 % of a hit here. ' +
          'Ratios within a few percent of 1 are inside this machine\'s run-to-run noise (see the rounds). ' +
          ceilingNote(r, faster))
        break
      }
      case 'emitP99': {
        const d = on.service.emitDelay
        const wait = (r.workload as { cacheRefreshWaitMs?: number }).cacheRefreshWaitMs
        out.push(`- **Emit delay p99 ${b.measured} (bar ${b.target}).** COMMIT to emit over ${d.count.toLocaleString('en-US')} publications, p50 ${d.p50Ms ?? '–'} ms: the invalidation (p99 ${r.invalidationMs.p99 ?? '–'} ms) then the wait for the reload of what it deleted, which ends CACHE_REFRESH_WAIT_MS (${wait ?? '–'} ms in this run) after the COMMIT. ` +
          (before ? `Without the refresh (the before, same run) the emit follows the invalidation alone: p50 ${before.service.emitDelay.p50Ms ?? '–'} ms, p99 ${before.service.emitDelay.p99Ms ?? '–'} ms${(before.service.emitDelay.p99Ms ?? 0) >= 20 ? ', itself past the bar' : ''}. ` : '') +
          'Past that bound what is left is the invalidation\'s own tail and the time the emit waits for a core (a timer fires late on 2 busy cores). ' +
          'What would close it: cores of the service\'s own (the simulator and PostgreSQL elsewhere); a lower CACHE_REFRESH_WAIT_MS trades hits for refetches that join the reload (coalesced).')
        break
      }
    }
  }
  return out
}
