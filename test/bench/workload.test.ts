import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHttpClient } from '../../bench/workload/http.js'
import { percentiles } from '../../bench/workload/latency.js'
import { histogramDelta, histogramQuantile, parsePrometheus } from '../../bench/workload/prom.js'
import { panelsFor } from '../../bench/workload/viewers.js'
import { createWriterFleet } from '../../bench/workload/writers.js'
import { createRng } from '../../src/tools/random.js'
import { waitFor } from '../helpers/redis.js'

describe('workload writers', () => {
  // A recording endpoint standing in for ingestion: the writers' timing and readings are what is checked.
  const received: Array<{ at: number, eui: string, temperature: number, key: string }> = []
  let server: http.Server
  let base = ''
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => { body += c.toString() })
      req.on('end', () => {
        const r = (JSON.parse(body) as { readings: Array<{ deviceEui: string, temperature: number }> }).readings[0]!
        received.push({ at: performance.now(), eui: r.deviceEui, temperature: r.temperature, key: String(req.headers['x-api-key']) })
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":1,"duplicates":0}')
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

  it('spreads each device over the interval and sends about the requested share out of range', async () => {
    const devices = Array.from({ length: 40 }, (_, i) => ({ deviceEui: `eui-${i}`, apiKey: `key-${i % 4}`, tempMin: 2, tempMax: 8, state: 'normal' }))
    const client = createHttpClient({ maxSockets: 16 })
    const fleet = createWriterFleet({ targets: [base], devices, intervalMs: 400, outOfRange: 0.25, confirmReadings: 3, http: client, rng: createRng(1) })
    const perDevice = () => {
      const counts = new Map<string, number>()
      for (const r of received) counts.set(r.eui, (counts.get(r.eui) ?? 0) + 1)
      return counts
    }
    const t0 = performance.now()
    fleet.start()
    // Five readings from every device: the last device's fifth is due 4 + 39/40 intervals (1990 ms) in.
    await waitFor(() => perDevice().size === 40 && [...perDevice().values()].every((n) => n >= 5), 10_000, 'five readings from every device')
    const reached = performance.now() - t0
    await fleet.stop()
    client.close()

    // Every device reported about every interval, not faster, each with its own organization's key.
    expect(reached).toBeGreaterThanOrEqual(1990)
    expect(reached).toBeLessThan(1990 + 2 * 400)
    expect(perDevice().size).toBe(40)
    for (const n of perDevice().values()) expect(n).toBeLessThanOrEqual(Math.floor(reached / 400) + 1)
    expect(received.every((r) => r.key === `key-${Number(r.eui.slice(4)) % 4}`)).toBe(true)
    // Not all at once: within the first interval the readings arrive over its whole length.
    const first = received.filter((r) => r.at - t0 < 400).map((r) => r.at - t0)
    expect(Math.max(...first) - Math.min(...first)).toBeGreaterThan(250)
    // Out of range in excursions, about the share asked for; in range clear of the 0.5 °C hysteresis band.
    const out = received.filter((r) => r.temperature > 8 || r.temperature < 2)
    expect(out.length / received.length).toBeGreaterThan(0.1)
    expect(out.length / received.length).toBeLessThan(0.45)
    expect(received.filter((r) => r.temperature >= 2 && r.temperature <= 8).every((r) => r.temperature >= 2.5 && r.temperature <= 7.5)).toBe(true)
    expect(fleet.stats()).toMatchObject({ devices: 40, failed: 0, accepted: received.length })
  })
})

describe('workload viewers', () => {
  it('refetch the panels an event changes, the trend only for their own unit', () => {
    expect(panelsFor('unitUpdate', { unitId: 'u1' }, 'u1')).toEqual(['overview', 'unitCounts', 'unitTrend'])
    expect(panelsFor('unitUpdate', { unitId: 'u2' }, 'u1')).toEqual(['overview', 'unitCounts'])
    expect(panelsFor('alertCreated', { unitId: 'u1' }, 'u1')).toEqual(['overview', 'alertCounts'])
    expect(panelsFor('alertEscalated', {}, 'u1')).toEqual(['overview', 'alertCounts'])
    expect(panelsFor('deviceStatusChange', {}, 'u1')).toEqual(['overview', 'devicesOnline'])
  })
})

describe('report figures', () => {
  it('reads invalidation percentiles from a Prometheus histogram like histogram_quantile', () => {
    const scrape = (counts: number[]) => parsePrometheus([
      '# HELP dashboard_cache_invalidation_seconds x',
      ...[0.001, 0.002, 0.005].map((le, i) => `dashboard_cache_invalidation_seconds_bucket{le="${le}"} ${counts[i]}`),
      `dashboard_cache_invalidation_seconds_bucket{le="+Inf"} ${counts[3]}`,
      `dashboard_cache_invalidation_seconds_sum ${counts[3]! * 0.001}`,
      `dashboard_cache_invalidation_seconds_count ${counts[3]}`
    ].join('\n'))
    const h = histogramDelta(scrape([10, 10, 10, 10]), scrape([60, 108, 110, 110]), 'dashboard_cache_invalidation_seconds')
    expect(h.count).toBe(100)
    expect(histogramQuantile(h, 0.5)).toBeCloseTo(0.001, 6)
    expect(histogramQuantile(h, 0.99)).toBeCloseTo(0.002 + 0.003 * (1 / 2), 6)
    expect(histogramQuantile(histogramDelta(scrape([1, 1, 1, 1]), scrape([1, 1, 1, 1]), 'dashboard_cache_invalidation_seconds'), 0.5)).toBeNull()
  })

  it('takes nearest-rank percentiles', () => {
    const ms = Array.from({ length: 1000 }, (_, i) => i + 1)
    expect(percentiles(ms)).toMatchObject({ n: 1000, p50: 500, p95: 950, p99: 990, max: 1000 })
    expect(percentiles([])).toMatchObject({ n: 0, p99: 0 })
  })
})
