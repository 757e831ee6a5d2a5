import { randomUUID } from 'node:crypto'
import type { Alert, UnitState } from '../../db/schema.js'
import { alertEvent, type ChangeEvent } from '../events/types.js'
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
 * The alert lifecycle of one unit, in memory: feed it observations in time order, then write the
 * result in the unit's transaction. Pure apart from id generation, so a whole catch-up batch (open,
 * escalate, resolve, reopen) is decided before touching the database and is easy to test.
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

  function openExcursion (temperature: number, threshold: NonNullable<Alert['threshold']>, at: Date) {
    const alert: Alert = {
      id: newId(),
      organizationId: unit.organizationId,
      unitId: unit.id,
      type: 'temperature_excursion',
      severity: 'warning',
      status: 'active',
      triggerTemperature: temperature,
      threshold,
      triggeredAt: at,
      acknowledgedAt: null,
      resolvedAt: null
    }
    open.set('temperature_excursion', alert)
    record('alertCreated', alert)
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
      const current = open.get('temperature_excursion')
      if (!current) {
        openExcursion(temperature, threshold, at)
      } else if (current.severity === 'warning' && at.getTime() - current.triggeredAt.getTime() >= confirmMs) {
        current.severity = 'critical'
        record('alertEscalated', current)
      }
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
