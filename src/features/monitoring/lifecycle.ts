import { randomUUID } from 'node:crypto'
import type { Alert, UnitState } from '../../db/schema.js'
import { alertEvent, type ChangeEvent } from '../changes/events.js'
import { excursionThreshold, nextState } from './state-machine.js'

export interface LifecycleUnit {
  id: string
  organizationId: string
  state: UnitState
  stateChangedAt: Date
  tempMin: number
  tempMax: number
}

export interface LifecycleResult {
  previousState: UnitState
  state: UnitState
  stateChangedAt: Date
  /** Alerts opened during this run, with their final values, in creation order. */
  inserted: Alert[]
  /** Alerts that were open before this run and changed, with their final values. */
  updated: Alert[]
  /** Alert events in the order the transitions happened, each with the alert as it was then. */
  events: ChangeEvent[]
}

export interface LifecycleOptions {
  confirmMinutes: number
  newId?: () => string
}

/**
 * The unit state machine and alert lifecycle of one unit, in memory: feed it what happened in time order
 * (readings, silence, the passing of time), then write the result in the unit's transaction. Ingestion, the
 * sweeper and dataset seeding all go through it, so they cannot disagree. Pure apart from id generation, so a
 * whole catch-up batch (open, escalate, resolve, reopen) is decided before touching the database.
 *
 * Reading-driven timestamps are the reading's recordedAt, never earlier than what they follow
 * (a late reading must not resolve an alert before it was raised).
 */
export function createLifecycle (unit: LifecycleUnit, openAlerts: Alert[], opts: LifecycleOptions) {
  const confirmMs = opts.confirmMinutes * 60_000
  const newId = opts.newId ?? randomUUID
  const previousState = unit.state
  let state = unit.state
  let stateChangedAt = unit.stateChangedAt
  const open = new Map<Alert['type'], Alert>(openAlerts.map((a) => [a.type, { ...a }]))
  const existingIds = new Set(openAlerts.map((a) => a.id))
  const touched = new Map<string, Alert>()
  const events: ChangeEvent[] = []

  function record (name: Parameters<typeof alertEvent>[0], alert: Alert) {
    touched.set(alert.id, alert)
    events.push(alertEvent(name, { ...alert }))
  }

  function resolve (type: Alert['type'], at: Date) {
    const alert = open.get(type)
    if (!alert) return
    open.delete(type)
    alert.status = 'resolved'
    alert.resolvedAt = latest(at, alert.triggeredAt)
    record('alertResolved', alert)
  }

  function openAlert (type: Alert['type'], at: Date, temperature: number | null, threshold: Alert['threshold']) {
    const alert: Alert = {
      id: newId(),
      organizationId: unit.organizationId,
      unitId: unit.id,
      type,
      severity: 'warning',
      status: 'active',
      triggerTemperature: temperature,
      threshold,
      triggeredAt: at,
      acknowledgedAt: null,
      resolvedAt: null
    }
    open.set(type, alert)
    record('alertCreated', alert)
  }

  /** A warning excursion still on its side of the range CONFIRM_MINUTES after it was raised becomes critical. */
  function escalateDue (now: Date) {
    const current = open.get('temperature_excursion')
    if (!current || current.severity !== 'warning' || current.threshold !== excursionThreshold(state)) return
    if (now.getTime() - current.triggeredAt.getTime() < confirmMs) return
    current.severity = 'critical'
    record('alertEscalated', current)
  }

  return {
    /** A temperature observed at `at`: a new reading, or the last one re-evaluated against new thresholds. */
    observe (temperature: number, at: Date): void {
      const next = nextState(state, temperature, unit.tempMin, unit.tempMax)
      if (next !== state) {
        state = next
        stateChangedAt = latest(at, stateChangedAt)
      }
      // Any observation means the unit reports again.
      resolve('offline', at)
      const threshold = excursionThreshold(next)
      // Back in range, or crossed to the other side (too_hot → too_cold): the old excursion is over.
      if (open.get('temperature_excursion')?.threshold !== threshold) resolve('temperature_excursion', at)
      if (threshold === null) return
      if (!open.has('temperature_excursion')) openAlert('temperature_excursion', at, temperature, threshold)
      else escalateDue(at)
    },

    /**
     * Silent for OFFLINE_AFTER_MINUTES (the sweeper, or seeding's view of the end of its window): offline, with an
     * offline alert. An open excursion stays open until the next reading decides it.
     */
    goOffline (at: Date): void {
      if (state !== 'offline') {
        state = 'offline'
        stateChangedAt = latest(at, stateChangedAt)
      }
      if (!open.has('offline')) openAlert('offline', at, null, null)
    },

    /** Time passed without a reading (the sweeper): escalates a confirmed excursion. */
    tick (now: Date): void {
      escalateDue(now)
    },

    /** Resolves every open alert (the unit is deactivated: nobody watches it any more). */
    resolveAll (at: Date): void {
      for (const type of [...open.keys()]) resolve(type, at)
    },

    result (): LifecycleResult {
      const all = [...touched.values()]
      return {
        previousState,
        state,
        stateChangedAt,
        inserted: all.filter((a) => !existingIds.has(a.id)),
        updated: all.filter((a) => existingIds.has(a.id)),
        events
      }
    }
  }
}

function latest (a: Date, b: Date): Date {
  return a.getTime() >= b.getTime() ? a : b
}
