import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import autocannon from 'autocannon'
import Fastify from 'fastify'
import type { Redis } from 'ioredis'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import type { ChangeEvent } from '../../src/features/changes/events.js'
import { entriesForEvent } from '../../src/features/dashboard/query-types.js'
import { waitFor } from '../../src/lib/net.js'
import { benchCache, fillUnrelated, orgFixture, populate } from '../lib/cache-fixture.js'
import { percentiles, type Percentiles } from '../workload/latency.js'
import { medianOf, pairedRatio } from '../lib/stats.js'
import { breakdownSteps, registerBreakdownRoutes, type BreakdownStep } from './breakdown.js'
import { peerNames, registerPeerRoutes, type PeerName } from './peers.js'

/**
 * Event invalidation (the per-entry script the publisher runs for a unitUpdate) on a Redis holding
 * `size` unrelated keys (half BullMQ-like hashes, half other tenants' dashboard keys: bench/lib/cache-fixture),
 * for each size. Timed per call on the client, round trip included.
 */
export async function invalidationMicro (o: { redisUrl: string, admin: Redis, sizes: number[], iterations: number, log: (l: string) => void }) {
  const cache = await benchCache(o.redisUrl)
  const fx = orgFixture({ units: 1000, trends: 700, unitAlerts: 300 })
  const out: Array<{ unrelatedKeys: number, dbsize: number } & Percentiles> = []
  try {
    for (const size of o.sizes) {
      await o.admin.flushall()
      await fillUnrelated(o.admin, size)
      await populate(cache, fx.all)
      const samples: number[] = []
      for (let i = -10; i < o.iterations; i++) {
        const unitId = fx.unitIds[((i + 10) * 37) % 700]!
        const event: ChangeEvent = {
          name: 'unitUpdate',
          payload: { organizationId: fx.orgId, unitId, state: 'too_hot', previousState: 'normal', lastTemperature: 9.5, lastReadingAt: new Date().toISOString() }
        }
        const entries = entriesForEvent(event)
        await populate(cache, entries)
        const t = performance.now()
        await cache.invalidateEntries(fx.orgId, entries)
        if (i >= 0) samples.push(performance.now() - t) // the first ten warm the script cache and the connection
      }
      const dbsize = await o.admin.dbsize()
      out.push({ unrelatedKeys: size, dbsize, ...percentiles(samples) })
      o.log(`invalidation at ${size.toLocaleString('en-US')} unrelated keys: p50 ${out.at(-1)!.p50} ms, p99 ${out.at(-1)!.p99} ms`)
    }
  } finally {
    await cache.close()
    await o.admin.flushall()
  }
  return out
}

/**
 * `mainThreadUs`: the server's event-loop active time per request over the run, in µs (performance.eventLoopUtilization;
 * autocannon runs in a worker thread, so none of it is the load generator's). Absent from reports written before it
 * was measured.
 */
export interface LoadRun { reqPerSec: number, p50: number, p99: number, requests: number, mainThreadUs?: number }
export interface Throughput { reqPerSec: number, mainThreadUs?: number, runs: LoadRun[] }

const BREAKDOWN_KEY = 'bench-breakdown:overview'

const serverOptions = {
  logger: { level: 'warn' },
  bodyLimit: 1024 * 1024,
  trustProxy: false,
  ajv: { customOptions: { coerceTypes: 'array' as const, removeAdditional: false, allErrors: false } }
}

/**
 * Requests/s of a cached dashboard read against a bare Fastify route returning the same bytes (the app's
 * server options, no plugins), against the same read through the peer libraries mounted on the app, and
 * the steps in between (breakdown.ts). autocannon runs in a worker thread; scenarios are interleaved
 * `rounds` times so drift hits them all alike, and each figure is the median round.
 */
export async function hitPathMicro (o: {
  databaseUrl: string
  redisUrl: string
  /** A plain connection to that Redis, for the breakdown's own key. */
  admin: Redis
  jwtSecret: string
  orgId: string
  connections: number
  durationSeconds: number
  warmupSeconds: number
  rounds: number
  log: (l: string) => void
}) {
  // The per-principal request budget still runs on every request (its cost is part of the figure); its limit is
  // not what is measured.
  const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: o.jwtSecret, LOG_LEVEL: 'warn', REDIS_URL: o.redisUrl, DATABASE_URL: o.databaseUrl, DATA_DIR: '.coldboard-bench', RATE_LIMIT_MAX: '10000000' })
  let app: App | null = null
  let peers: Awaited<ReturnType<typeof registerPeerRoutes>> | null = null
  let steps: ReturnType<typeof registerBreakdownRoutes> | null = null
  const bare = Fastify(serverOptions)
  try {
    app = await buildApp({ config, worker: false, sweeper: false })
    const auth = { authorization: `Bearer ${app.tokens.sign({ sub: 'bench', orgs: { [o.orgId]: 'viewer' } })}` }
    // Routes are added before the app is ready: the peers go through the same hooks as the dashboard.
    let payload: unknown = null
    let body = ''
    peers = await registerPeerRoutes(app, { redisUrl: o.redisUrl, payload: () => payload, ttlSeconds: config.CACHE_TTL_SECONDS })
    steps = registerBreakdownRoutes(app, { redisUrl: o.redisUrl, commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS, key: BREAKDOWN_KEY, body: () => body })
    // What coldboard's own cache connection is configured with (a fresh one from the same factory, closed with the app).
    const cacheConnectionAutoPipelining = app.redis?.options('cache').enableAutoPipelining === true
    const appUrl = await app.listen({ port: 0, host: '127.0.0.1' })
    const cache = app.cache
    await waitFor(() => cache.isAvailable(), 10_000, 'the cache connection')
    const first = await fetch(`${appUrl}/api/orgs/${o.orgId}/dashboard`, { headers: auth })
    body = await first.text()
    if (first.status !== 200) throw new Error(`dashboard answered ${first.status}`)
    payload = JSON.parse(body)
    await o.admin.set(BREAKDOWN_KEY, body)
    bare.get('/bare', (_req, reply) => reply.type('application/json; charset=utf-8').send(body))
    await bare.listen({ port: 0, host: '127.0.0.1' })

    // The bars' pairs run back to back (this machine's speed swings within seconds): the bare route, coldboard and
    // cache-manager (the closest peer in every run so far) side by side; the other peer and the breakdown's steps first.
    const peer = (name: PeerName) => ({ name, url: `${appUrl}${peers!.path(o.orgId, name)}`, headers: auth })
    const scenarios: Array<{ name: 'bare' | 'coldboard' | PeerName | BreakdownStep, url: string, headers?: Record<string, string> }> = [
      ...breakdownSteps.map((name) => ({ name, url: `${appUrl}${steps!.path(o.orgId, name)}`, headers: auth })),
      ...peerNames.filter((n) => n !== 'cacheManager').map(peer),
      { name: 'bare', url: `http://127.0.0.1:${(bare.server.address() as AddressInfo).port}/bare` },
      { name: 'coldboard', url: `${appUrl}/api/orgs/${o.orgId}/dashboard`, headers: auth },
      peer('cacheManager')
    ]
    for (const s of scenarios) {
      const r = await fetch(s.url, { headers: s.headers })
      const text = await r.text()
      if (r.status !== 200) throw new Error(`${s.name}: status ${r.status}`)
      if (JSON.stringify(JSON.parse(text)) !== JSON.stringify(JSON.parse(body))) throw new Error(`${s.name}: a different payload`)
    }
    const probe = await fetch(`${appUrl}/api/orgs/${o.orgId}/dashboard`, { headers: auth })
    await probe.arrayBuffer()
    if (probe.headers.get('x-cache') !== 'hit') throw new Error(`the dashboard read is not a hit (x-cache ${probe.headers.get('x-cache')})`)

    const runs: Record<string, LoadRun[]> = Object.fromEntries(scenarios.map((s) => [s.name, []]))
    // How coldboard's hits in these rounds were answered: from the in-process copy (no Redis command) or by Redis.
    const metric = async (m: { get (): Promise<{ values: Array<{ value: number }> }> }) => (await m.get()).values.reduce((n, v) => n + v.value, 0)
    let coldboardHits = 0
    let coldboardLocalHits = 0
    for (let round = 0; round < o.rounds; round++) {
      // Every other round runs the scenarios in reverse, so that a machine slowing down or speeding up over a round
      // does not always favour the same side of a comparison.
      for (const s of round % 2 === 0 ? scenarios : [...scenarios].reverse()) {
        if (o.warmupSeconds > 0) await autocannon({ url: s.url, connections: o.connections, duration: o.warmupSeconds, workers: 1, headers: s.headers })
        const h0 = s.name === 'coldboard' ? [await metric(app.dashboard.metrics.hit), await metric(app.dashboard.metrics.localHit)] : null
        const elu = performance.eventLoopUtilization()
        const r = await autocannon({ url: s.url, connections: o.connections, duration: o.durationSeconds, workers: 1, headers: s.headers })
        const active = performance.eventLoopUtilization(elu).active
        if (h0) {
          coldboardHits += await metric(app.dashboard.metrics.hit) - h0[0]!
          coldboardLocalHits += await metric(app.dashboard.metrics.localHit) - h0[1]!
        }
        if (r.non2xx > 0 || r.errors > 0) throw new Error(`${s.name}: ${r.non2xx} non-2xx, ${r.errors} errors`)
        const run = { reqPerSec: Math.round(r.requests.total / r.duration), p50: r.latency.p50, p99: r.latency.p99, requests: r.requests.total, mainThreadUs: r.requests.total > 0 ? Math.round((active * 1000 / r.requests.total) * 10) / 10 : 0 }
        runs[s.name]!.push(run)
        o.log(`hit path round ${round + 1}/${o.rounds} ${s.name}: ${run.reqPerSec} req/s, p99 ${run.p99} ms, ${run.mainThreadUs} µs of the server's main thread per request`)
      }
    }
    // The median round: one round disturbed by a neighbour on this shared machine does not move it.
    const median = (name: string): Throughput => ({ reqPerSec: Math.round(medianOf(runs[name]!.map((r) => r.reqPerSec))), mainThreadUs: medianOf(runs[name]!.map((r) => r.mainThreadUs ?? 0)), runs: runs[name]! })
    const coldboard = median('coldboard')
    const bareT = median('bare')
    const peerT = Object.fromEntries(peerNames.map((n) => [n, median(n)])) as Record<PeerName, Throughput>
    const ratio = (a: string, b: string): number => pairedRatio(runs[a]!, runs[b]!)
    return {
      connections: o.connections,
      durationSeconds: o.durationSeconds,
      rounds: o.rounds,
      payloadBytes: Buffer.byteLength(body),
      cacheConnectionAutoPipelining,
      /** Of coldboard's hits in the measured rounds, the share answered from the in-process copy (CACHE_LOCAL). */
      coldboardLocalShare: coldboardHits > 0 ? Math.round((coldboardLocalHits / coldboardHits) * 10_000) / 10_000 : null,
      bare: bareT,
      coldboard,
      hitThroughputRatio: ratio('coldboard', 'bare'),
      breakdown: Object.fromEntries(breakdownSteps.map((n) => [n, { ...median(n), ratioToBare: ratio(n, 'bare') }])) as
        Record<BreakdownStep, Throughput & { ratioToBare: number }>,
      peers: Object.fromEntries(peerNames.map((n) => [n, { ...peerT[n], ratioToColdboard: ratio(n, 'coldboard') }])) as
        Record<PeerName, Throughput & { ratioToColdboard: number }>
    }
  } finally {
    await bare.close()
    await peers?.close()
    steps?.close()
    await app?.close()
  }
}
