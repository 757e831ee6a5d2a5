import type { Alert, UnitState } from '../../db/schema.js'

export interface UnitUpdatePayload {
  organizationId: string
  unitId: string
  state: UnitState
  previousState: UnitState
  lastTemperature: number | null
  lastReadingAt: string | null
}

export interface AlertPayload {
  organizationId: string
  alertId: string
  unitId: string
  type: Alert['type']
  severity: Alert['severity']
  status: Alert['status']
}

export interface DeviceStatusPayload {
  organizationId: string
  deviceId: string
  unitId: string
  status: 'online' | 'offline'
}

/**
 * Every change the dashboard can see. `alertEscalated` (warning → critical) is an addition to
 * SPEC §4: clients that ignore it still read fresh counts, because it invalidates like the others.
 */
export type ChangeEvent =
  | { name: 'unitUpdate', payload: UnitUpdatePayload }
  | { name: 'alertCreated' | 'alertAcknowledged' | 'alertResolved' | 'alertEscalated', payload: AlertPayload }
  | { name: 'deviceStatusChange', payload: DeviceStatusPayload }

export type EventName = ChangeEvent['name']

export function alertEvent (name: 'alertCreated' | 'alertAcknowledged' | 'alertResolved' | 'alertEscalated', a: Alert): ChangeEvent {
  return {
    name,
    payload: { organizationId: a.organizationId, alertId: a.id, unitId: a.unitId, type: a.type, severity: a.severity, status: a.status }
  }
}
