import type { UnitState, UnitType } from '../db/schema.js'
import type { IngestResultJson, ReadingInput } from '../features/ingestion/schemas.js'
import { systemClock, type Clock } from '../lib/clock.js'
import { profiles } from './profiles.js'
import { createRng, type Rng } from './random.js'

const MIN = 60_000

export interface SimulatedDevice {
  deviceEui: string
  unitName: string
  unitType: UnitType
  tempMin: number
  tempMax: number
  /** The unit's state when the simulator starts: a unit already out of range recovers after a few minutes. */
  state: UnitState
}

export interface LiveSimulatorOptions {
  /** e.g. http://127.0.0.1:3000 */
  baseUrl: string
  apiKey: string
  devices: SimulatedDevice[]
  /** EUIs that never report (the demo's offline unit). */
  silent?: ReadonlySet<string>
  intervalMs: number
  /** An excursion that outlasts this many minutes escalates to critical: the long failures do. */
  confirmMinutes: number
  clock?: Clock
  seed?: number
  log: (line: string) => void
}

export interface TickResult { sent: number, status: number, accepted?: number, duplicates?: number }

interface Episode { direction: 'hot' | 'cold', untilMs: number, excess: number }

interface DeviceModel {
  device: SimulatedDevice
  setPoint: number
  noise: number
  episode: Episode | null
}

/**
 * Drives a running coldboard like a fleet of real sensors: every `intervalMs`, one batch with a
 * reading per device through POST /api/ingest/readings. Mostly in range; now and then a door
 * left open (a short excursion: an alert opens and resolves) and, less often, a failure that lasts
 * past CONFIRM_MINUTES (the alert escalates to critical, then resolves when the unit recovers).
 */
export function createLiveSimulator (opts: LiveSimulatorOptions) {
  const clock = opts.clock ?? systemClock
  const rng: Rng = createRng(opts.seed ?? Math.floor(Math.random() * 2 ** 31))
  const silent = opts.silent ?? new Set<string>()
  const models: DeviceModel[] = opts.devices.filter((d) => !silent.has(d.deviceEui)).map((device) => {
    const p = profiles[device.unitType]
    const half = (device.tempMax - device.tempMin) / 2
    const now = clock.now().getTime()
    const model: DeviceModel = {
      device,
      setPoint: device.tempMin + half + rng.between(-0.25, 0.25) * Math.min(half, 3),
      noise: p.noise,
      episode: null
    }
    if (device.state === 'too_hot' || device.state === 'too_cold') {
      model.episode = { direction: device.state === 'too_hot' ? 'hot' : 'cold', untilMs: now + rng.between(1, 4) * MIN, excess: rng.between(0.8, 2) }
    }
    return model
  })
  let timer: NodeJS.Timeout | null = null
  let running: Promise<unknown> | null = null
  let stopped = false
  let lastProblem = ''

  /** At most two units out of range at once, so the dashboard stays mostly green. */
  function idleUnit (): DeviceModel | undefined {
    const idle = models.filter((m) => !m.episode)
    return idle.length > 0 && models.length - idle.length < 2 ? rng.pick(idle) : undefined
  }

  function startEpisodes (now: number): void {
    const perTick = opts.intervalMs / MIN
    // About one door excursion every 3 minutes across the fleet, one failure every 15 minutes.
    const door = rng.next() < perTick / 3
    const failure = rng.next() < perTick / 15
    let m = door ? idleUnit() : undefined
    if (m) {
      const minutes = rng.between(0.5, 2.5)
      m.episode = { direction: 'hot', untilMs: now + minutes * MIN, excess: rng.between(0.3, 1.5) }
      opts.log(`simulator: ${m.device.unitName} door left open, above range for ${minutes.toFixed(1)} min`)
    }
    m = failure ? idleUnit() : undefined
    if (m) {
      const minutes = opts.confirmMinutes + rng.between(1, 4)
      m.episode = { direction: rng.pick(profiles[m.device.unitType].failures), untilMs: now + minutes * MIN, excess: rng.between(1.5, 4) }
      const what = m.episode.direction === 'hot' ? 'compressor failure' : 'thermostat stuck cold'
      opts.log(`simulator: ${m.device.unitName} ${what} for ${minutes.toFixed(1)} min (the alert turns critical after ${opts.confirmMinutes} min)`)
    }
  }

  function temperature (m: DeviceModel, now: number): number {
    const { device } = m
    if (m.episode && now >= m.episode.untilMs) {
      opts.log(`simulator: ${device.unitName} back in range`)
      m.episode = null
    }
    let t: number
    if (m.episode) {
      const sign = m.episode.direction === 'hot' ? 1 : -1
      const edge = sign > 0 ? device.tempMax : device.tempMin
      t = edge + sign * Math.max(0.1, m.episode.excess + 0.2 * rng.gaussian())
    } else {
      // Back in range means past the hysteresis band, so the unit really returns to normal.
      t = Math.min(device.tempMax - 0.6, Math.max(device.tempMin + 0.6, m.setPoint + m.noise * rng.gaussian()))
    }
    return Math.round(t * 100) / 100
  }

  async function tick (): Promise<TickResult> {
    const nowDate = clock.now()
    const now = nowDate.getTime()
    startEpisodes(now)
    const readings: ReadingInput[] = models.map((m) => ({
      deviceEui: m.device.deviceEui,
      temperature: temperature(m, now),
      recordedAt: nowDate.toISOString()
    }))
    if (readings.length === 0) return { sent: 0, status: 0 }
    try {
      const res = await fetch(`${opts.baseUrl}/api/ingest/readings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': opts.apiKey },
        body: JSON.stringify({ readings })
      })
      const body = await res.json().catch(() => ({})) as Partial<IngestResultJson> & { error?: { message?: string } }
      report(res.status === 202 ? '' : `ingestion answered ${res.status}${body.error?.message ? `: ${body.error.message}` : ''}`)
      return { sent: readings.length, status: res.status, accepted: body.accepted, duplicates: body.duplicates }
    } catch (err) {
      report(`ingestion unreachable: ${(err as Error).message}`)
      return { sent: readings.length, status: 0 }
    }
  }

  /** One line per distinct problem, and one when it clears: a broken endpoint must not flood the terminal. */
  function report (problem: string): void {
    if (stopped || problem === lastProblem) return
    opts.log(problem === '' ? 'simulator: ingestion accepts readings again' : `simulator: ${problem}`)
    lastProblem = problem
  }

  function schedule (): void {
    if (stopped) return
    timer = setTimeout(() => {
      running = tick().finally(() => { running = null; schedule() })
    }, opts.intervalMs)
  }

  return {
    tick,
    /** Sends a first batch now, then one every interval (never two at once). */
    start (): void {
      stopped = false
      running = tick().finally(() => { running = null; schedule() })
    },
    /** Stops the timer and waits for a batch in flight. */
    async stop (): Promise<void> {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = null
      await running?.catch(() => {})
    }
  }
}
export type LiveSimulator = ReturnType<typeof createLiveSimulator>
