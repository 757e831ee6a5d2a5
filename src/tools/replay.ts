import type { Alert, UnitState } from '../db/schema.js'
import { createLifecycle } from '../features/monitoring/lifecycle.js'

export type SeedAlert = Omit<Alert, 'id' | 'organizationId' | 'unitId'>

export interface ReplayInput {
  /** Temperatures in hundredths of a degree, one every `intervalMs` from `startMs`. */
  temps: Int32Array
  tempMin: number
  tempMax: number
  startMs: number
  intervalMs: number
  nowMs: number
  createdAtMs: number
  offlineAfterMs: number
  confirmMs: number
  /** Decides, per confirmed excursion, whether someone acknowledged it (a realistic mix). */
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
 * Plays a unit's readings through the monitoring lifecycle (src/features/monitoring/lifecycle.ts) exactly as
 * ingestion would have, then what the sweeper would have done by `nowMs`: escalations, and offline once the
 * unit had been silent OFFLINE_AFTER_MINUTES. Seeded history and live evaluation cannot disagree.
 */
export function replayUnit (input: ReplayInput): ReplayResult {
  const { temps, startMs, intervalMs, nowMs } = input
  let ids = 0
  const lifecycle = createLifecycle(
    { id: 'seed', organizationId: 'seed', state: 'normal', stateChangedAt: new Date(input.createdAtMs), tempMin: input.tempMin, tempMax: input.tempMax },
    [],
    { confirmMinutes: input.confirmMs / 60_000, newId: () => String(ids++) }
  )
  for (let i = 0; i < temps.length; i++) {
    const at = new Date(startMs + i * intervalMs)
    // The sweeps between two readings escalate an excursion confirmed before this one (a reading at the very
    // confirm instant is evaluated first).
    lifecycle.tick(new Date(at.getTime() - 1))
    lifecycle.observe(temps[i]! / 100, at)
  }

  const lastIndex = temps.length - 1
  const lastReadingMs = lastIndex >= 0 ? startMs + lastIndex * intervalMs : null
  const offlineAtMs = (lastReadingMs ?? input.createdAtMs) + input.offlineAfterMs
  // The sweeps until then escalate a confirmed excursion; once offline, the unit waits for its next reading.
  lifecycle.tick(new Date(Math.min(nowMs, offlineAtMs)))
  if (offlineAtMs <= nowMs) lifecycle.goOffline(new Date(offlineAtMs))
  const result = lifecycle.result()

  const alerts = result.inserted.map(({ id: _id, organizationId: _o, unitId: _u, ...alert }): SeedAlert => {
    if (alert.type === 'temperature_excursion' && input.acknowledge?.(alert)) {
      const end = alert.resolvedAt?.getTime() ?? nowMs
      const start = alert.triggeredAt.getTime()
      alert.acknowledgedAt = new Date(start + Math.floor((end - start) / 2))
      if (alert.status === 'active') alert.status = 'acknowledged'
    }
    return alert
  })
  return {
    state: result.state,
    stateChangedAt: result.stateChangedAt,
    lastTemperature: lastIndex >= 0 ? temps[lastIndex]! / 100 : null,
    lastReadingAt: lastReadingMs === null ? null : new Date(lastReadingMs),
    alerts
  }
}
