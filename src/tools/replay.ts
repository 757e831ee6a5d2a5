import type { Alert, UnitState } from '../db/schema.js'

/** Hysteresis of SPEC §2 in hundredths of a degree. */
export const HYSTERESIS_C = 50

/** SPEC §2: the state after one reading (°C × 100), given the state before it. Offline is decided by time, not here. */
export function stateAfter (previous: UnitState, tempC: number, minC: number, maxC: number): Exclude<UnitState, 'offline'> {
  if (tempC > maxC) return 'too_hot'
  if (tempC < minC) return 'too_cold'
  if (previous === 'too_hot' && tempC > maxC - HYSTERESIS_C) return 'too_hot'
  if (previous === 'too_cold' && tempC < minC + HYSTERESIS_C) return 'too_cold'
  return 'normal'
}

export interface SeedAlert {
  type: Alert['type']
  severity: Alert['severity']
  status: Alert['status']
  triggerTemperature: number | null
  threshold: Alert['threshold']
  triggeredAt: Date
  acknowledgedAt: Date | null
  resolvedAt: Date | null
}

export interface ReplayInput {
  temps: Int32Array
  tempMin: number
  tempMax: number
  startMs: number
  intervalMs: number
  nowMs: number
  createdAtMs: number
  offlineAfterMs: number
  confirmMs: number
  /** Decides, per open or resolved excursion, whether someone acknowledged it (a realistic mix). */
  acknowledge?: (alert: SeedAlert) => boolean
}

export interface ReplayResult {
  state: UnitState
  stateChangedAt: Date
  lastTemperature: number | null
  lastReadingAt: Date | null
  alerts: SeedAlert[]
}

/**
 * Plays a unit's readings through the state machine the way ingestion would have, then applies
 * the sweeper's view at `nowMs`: the unit's final state, when it last changed, and every alert
 * its history raised (excursions resolved on the way back in range, escalated to critical once
 * they lasted CONFIRM_MINUTES; an offline alert if the unit has been silent too long).
 */
export function replayUnit (input: ReplayInput): ReplayResult {
  const { temps, startMs, intervalMs, nowMs, confirmMs } = input
  const minC = Math.round(input.tempMin * 100)
  const maxC = Math.round(input.tempMax * 100)
  const alerts: SeedAlert[] = []
  let state: UnitState = 'normal'
  let changedAt = input.createdAtMs
  let open: SeedAlert | null = null

  for (let i = 0; i < temps.length; i++) {
    const t = startMs + i * intervalMs
    const next = stateAfter(state, temps[i]!, minC, maxC)
    if (next !== state) changedAt = t
    if (next !== 'normal' && !open) {
      open = {
        type: 'temperature_excursion',
        severity: 'warning',
        status: 'active',
        triggerTemperature: temps[i]! / 100,
        threshold: next === 'too_hot' ? 'temp_max' : 'temp_min',
        triggeredAt: new Date(t),
        acknowledgedAt: null,
        resolvedAt: null
      }
    } else if (next === 'normal' && open) {
      open.status = 'resolved'
      open.resolvedAt = new Date(t)
      alerts.push(settle(open, t - open.triggeredAt.getTime() >= confirmMs, input))
      open = null
    }
    state = next
  }
  if (open) alerts.push(settle(open, nowMs - open.triggeredAt.getTime() >= confirmMs, input))

  const lastIndex = temps.length - 1
  const lastReadingMs = lastIndex >= 0 ? startMs + lastIndex * intervalMs : null
  const silentSince = lastReadingMs ?? input.createdAtMs
  if (nowMs - silentSince >= input.offlineAfterMs) {
    // The sweeper noticed at the end of the window; an open excursion stays open until the next reading.
    changedAt = silentSince + input.offlineAfterMs
    state = 'offline'
    alerts.push({
      type: 'offline',
      severity: 'warning',
      status: 'active',
      triggerTemperature: null,
      threshold: null,
      triggeredAt: new Date(changedAt),
      acknowledgedAt: null,
      resolvedAt: null
    })
  }
  return {
    state,
    stateChangedAt: new Date(changedAt),
    lastTemperature: lastIndex >= 0 ? temps[lastIndex]! / 100 : null,
    lastReadingAt: lastReadingMs === null ? null : new Date(lastReadingMs),
    alerts
  }
}

function settle (alert: SeedAlert, confirmed: boolean, input: ReplayInput): SeedAlert {
  if (confirmed) alert.severity = 'critical'
  if (input.acknowledge?.(alert)) {
    const end = alert.resolvedAt?.getTime() ?? input.nowMs
    const start = alert.triggeredAt.getTime()
    alert.acknowledgedAt = new Date(start + Math.floor((end - start) / 2))
    if (alert.status === 'active') alert.status = 'acknowledged'
  }
  return alert
}
