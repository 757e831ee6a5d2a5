import type { UnitType } from '../db/schema.js'
import { profiles } from './profiles.js'
import { createRng } from './random.js'

const MIN = 60_000
const HOUR = 3_600_000

/** An ongoing failure at the end of the window: out of range from reading `fromIndex` on. */
export interface FailurePlan {
  direction: 'hot' | 'cold'
  fromIndex: number
  /** How far past the threshold the unit ends up, °C. */
  excess: number
}

export interface SeriesPlan {
  unitType: UnitType
  tempMin: number
  tempMax: number
  /** recorded_at of reading i is startMs + i * intervalMs. */
  startMs: number
  intervalMs: number
  /** Readings actually written (fewer than the window holds for a unit that went offline). */
  count: number
  seed: number
  failure?: FailurePlan
}

/**
 * One unit's temperatures in hundredths of a degree (exact: the same integers are written to the
 * numeric(6,2) column and drive the state replay). A per-unit set point with slow drift, a
 * compressor cycle and autocorrelated sensor noise; door openings by day, defrost bumps on freezers,
 * and an optional failure ramping out of range at the end.
 */
export function generateSeries (plan: SeriesPlan): Int32Array {
  const p = profiles[plan.unitType]
  const rng = createRng(plan.seed)
  const { startMs, intervalMs, count } = plan
  const out = new Int32Array(count)
  if (count === 0) return out

  const drift = rng.between(...p.drift)
  const cycle = rng.between(...p.cycle)
  const half = (plan.tempMax - plan.tempMin) / 2
  const mid = plan.tempMin + half
  // Keep the undisturbed signal well inside the range: excursions come from events, not from noise.
  const room = Math.max(0, half - drift - cycle - 3.5 * p.noise - 0.4)
  const setPoint = mid + rng.between(-room, room) * 0.6
  const driftPeriod = rng.between(3, 9) * HOUR
  const driftPhase = rng.next() * 2 * Math.PI
  const cyclePeriod = rng.between(18, 45) * MIN
  const cyclePhase = rng.next()

  const temps = new Float64Array(count)
  let noise = 0
  for (let i = 0; i < count; i++) {
    const t = startMs + i * intervalMs
    noise = 0.7 * noise + p.noise * 0.714 * rng.gaussian()
    // Compressor: slow warm-up while off, quick pull-down while on.
    const f = ((t - startMs) / cyclePeriod + cyclePhase) % 1
    const saw = f < 0.75 ? f / 0.75 : 1 - (f - 0.75) / 0.25
    temps[i] = setPoint + drift * Math.sin(2 * Math.PI * t / driftPeriod + driftPhase) + cycle * (2 * saw - 1) + noise
  }

  const endMs = startMs + (count - 1) * intervalMs
  // Disturbances stop before a failure ramps in, so the failure is the only story at the end.
  const quietFrom = plan.failure ? startMs + (plan.failure.fromIndex * intervalMs) - 20 * MIN : Infinity
  const bump = (atMs: number, shape: (dtMs: number) => number, lengthMs: number) => {
    const first = Math.max(0, Math.ceil((atMs - startMs) / intervalMs))
    for (let i = first; i < count; i++) {
      const dt = startMs + i * intervalMs - atMs
      if (dt > lengthMs) break
      temps[i]! += shape(dt)
    }
  }

  const doorRate = rng.between(...p.doorsPerHour)
  for (let t = startMs - HOUR; t <= endMs; t += MIN) {
    const hour = Math.floor(t / HOUR) % 24
    const rate = hour >= 6 && hour < 22 ? doorRate : doorRate * 0.15
    if (rng.next() >= rate / 60 || t >= quietFrom) continue
    const rise = rng.between(1, 3) * MIN
    const amplitude = rng.between(...p.doorRise)
    const tau = rng.between(3, 9) * MIN
    bump(t, (dt) => dt < rise ? amplitude * dt / rise : amplitude * Math.exp(-(dt - rise) / tau), rise + 6 * tau)
  }

  if (p.defrostEveryHours && p.defrostRise) {
    const every = rng.between(...p.defrostEveryHours) * HOUR
    const length = rng.between(20, 30) * MIN
    const rise = rng.between(...p.defrostRise)
    for (let t = startMs - rng.next() * every; t <= endMs; t += every) {
      if (t >= quietFrom) break
      bump(t, (dt) => rise * Math.sin(Math.PI * dt / length), length)
    }
  }

  for (let i = 0; i < count; i++) out[i] = Math.round(temps[i]! * 100)

  if (plan.failure) applyFailure(out, plan, temps)
  return out
}

/** A failing unit: a 12-minute in-range ramp, then out of range (past the threshold by ≥ 0.1 °C) to the end. */
function applyFailure (out: Int32Array, plan: SeriesPlan, base: Float64Array): void {
  const f = plan.failure!
  const rng = createRng(plan.seed ^ 0x5f3759df)
  const maxC = Math.round(plan.tempMax * 100)
  const minC = Math.round(plan.tempMin * 100)
  const sign = f.direction === 'hot' ? 1 : -1
  const edge = f.direction === 'hot' ? plan.tempMax : plan.tempMin
  const rampSteps = Math.max(1, Math.round(12 * MIN / plan.intervalMs))
  for (let k = 1; k <= rampSteps; k++) {
    const i = f.fromIndex - k
    if (i < 0) break
    const w = 1 - k / (rampSteps + 1)
    const v = Math.round((base[i]! * (1 - w) + (edge - sign * 0.2) * w) * 100)
    out[i] = sign > 0 ? Math.min(v, maxC) : Math.max(v, minC)
  }
  const climb = Math.max(1, Math.round(25 * MIN / plan.intervalMs))
  for (let i = f.fromIndex; i < out.length; i++) {
    const progress = Math.min(1, (i - f.fromIndex + 1) / climb)
    const v = Math.round((edge + sign * (0.15 + f.excess * progress + 0.15 * rng.gaussian())) * 100)
    out[i] = sign > 0 ? Math.max(v, maxC + 10) : Math.min(v, minC - 10)
  }
}
