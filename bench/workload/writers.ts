import type { Rng } from '../../src/tools/random.js'
import type { operations } from '../../web/src/generated/openapi.js'
import type { HttpClient } from './http.js'
import { percentiles } from './latency.js'

/** The ingestion request body, as the API documents it (web/src/generated/openapi.ts). */
type IngestBody = operations['ingestReadings']['requestBody']['content']['application/json']

export interface WriterDevice {
  deviceEui: string
  apiKey: string
  tempMin: number
  tempMax: number
  /** The unit's state when the run starts: a unit already out of range stays out for a reading or three. */
  state: string
}

interface Model {
  device: WriterDevice
  url: string
  setPoint: number
  noise: number
  /** Readings left in the current excursion, and its direction. */
  excursion: number
  hot: boolean
}

/** Mean excursion length in readings: 80 % short (a door: 1–3 readings), 20 % long (a failure past CONFIRM_MINUTES). */
export function meanExcursionReadings (confirmReadings: number): number {
  return 0.8 * 2 + 0.2 * (confirmReadings + 2.5)
}

/**
 * Probability that an in-range reading starts an excursion, so that `share` of all readings are out of
 * range in steady state: share = p·L / (1 + p·L) for a mean excursion of L readings.
 */
export function excursionStartProbability (share: number, meanLength: number): number {
  return share <= 0 ? 0 : share / ((1 - share) * meanLength)
}

/**
 * Devices posting one reading each per interval through POST /api/ingest/readings with their
 * organization's API key. Device i fires at phase i/N of the interval, so the load is even over time.
 */
export function createWriterFleet (opts: {
  targets: string[]
  devices: WriterDevice[]
  intervalMs: number
  outOfRange: number
  /** Readings after which an excursion escalates (CONFIRM_MINUTES / the interval). */
  confirmReadings: number
  http: HttpClient
  rng: Rng
}) {
  const { rng } = opts
  const pStart = excursionStartProbability(opts.outOfRange, meanExcursionReadings(opts.confirmReadings))
  const models: Model[] = opts.devices.map((device, i) => {
    const half = (device.tempMax - device.tempMin) / 2
    // In range means clear of the 0.5 °C hysteresis band, so a unit that recovers really returns to normal.
    const margin = Math.min(0.6, half * 0.9)
    const out = device.state === 'too_hot' || device.state === 'too_cold'
    return {
      device,
      url: `${opts.targets[i % opts.targets.length]}/api/ingest/readings`,
      setPoint: device.tempMin + half + rng.between(-0.2, 0.2) * Math.max(0, half - margin),
      noise: Math.max(0.05, Math.min(0.4, (half - margin) / 3)),
      excursion: out ? rng.int(1, 3) : 0,
      hot: device.state !== 'too_cold'
    }
  })
  const stats = { sent: 0, accepted: 0, outOfRange: 0, failed: 0, status: {} as Record<string, number> }
  const latencies: number[] = []
  const inFlight = new Set<Promise<void>>()
  let timer: NodeJS.Timeout | null = null

  function temperature (m: Model): { t: number, out: boolean } {
    const { tempMin, tempMax } = m.device
    if (m.excursion === 0 && rng.next() < pStart) {
      m.hot = rng.next() < 0.8
      m.excursion = rng.next() < 0.8 ? rng.int(1, 3) : opts.confirmReadings + rng.int(1, 4)
    }
    if (m.excursion > 0) {
      m.excursion--
      const t = m.hot ? tempMax + rng.between(0.3, 2) : tempMin - rng.between(0.3, 2)
      return { t: Math.round(t * 100) / 100, out: true }
    }
    const half = (tempMax - tempMin) / 2
    const margin = Math.min(0.6, half * 0.9)
    const t = Math.min(tempMax - margin, Math.max(tempMin + margin, m.setPoint + m.noise * rng.gaussian()))
    return { t: Math.round(t * 100) / 100, out: false }
  }

  function send (m: Model): void {
    const { t, out } = temperature(m)
    if (out) stats.outOfRange++
    stats.sent++
    const batch: IngestBody = { readings: [{ deviceEui: m.device.deviceEui, temperature: t, recordedAt: new Date().toISOString() }] }
    const body = JSON.stringify(batch)
    const p = opts.http.post(m.url, { 'x-api-key': m.device.apiKey }, body).then((r) => {
      stats.status[String(r.status)] = (stats.status[String(r.status)] ?? 0) + 1
      if (r.status === 202) { stats.accepted++; latencies.push(r.ms) } else stats.failed++
    }).finally(() => inFlight.delete(p))
    inFlight.add(p)
  }

  return {
    devices: models.length,
    excursionStartProbability: pStart,
    /** Starts the round-robin: device i at start + i/N of the interval, then every interval. */
    start (): void {
      if (models.length === 0) return
      const started = performance.now()
      const step = opts.intervalMs / models.length
      let fired = 0
      const tick = () => {
        const due = Math.floor((performance.now() - started) / step) + 1
        while (fired < due) send(models[fired++ % models.length]!)
      }
      tick()
      timer = setInterval(tick, Math.max(5, Math.min(100, step)))
    },
    async stop (): Promise<void> {
      if (timer) clearInterval(timer)
      timer = null
      await Promise.all([...inFlight])
    },
    stats: () => ({ devices: models.length, ...stats, status: { ...stats.status }, latencyMs: percentiles(latencies) })
  }
}
export type WriterFleet = ReturnType<typeof createWriterFleet>
