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
 * Every change the dashboard can see, as emitted on Socket.io to the organization's room (src/features/realtime/socket.ts). `alertEscalated`
 * (warning → critical) goes beyond the five base events: clients that ignore it still read fresh counts,
 * because it invalidates like the others.
 */
export type ChangeEvent =
  | { name: 'unitUpdate', payload: UnitUpdatePayload }
  | { name: 'alertCreated' | 'alertAcknowledged' | 'alertResolved' | 'alertEscalated', payload: AlertPayload }
  | { name: 'deviceStatusChange', payload: DeviceStatusPayload }

export type EventName = ChangeEvent['name']
export const eventNames = ['unitUpdate', 'alertCreated', 'alertAcknowledged', 'alertResolved', 'alertEscalated', 'deviceStatusChange'] as const satisfies readonly EventName[]

/** The unit an event is about, if any: exhaustive over event names, so a new event cannot be forgotten. */
export function eventUnitId (e: ChangeEvent): string {
  switch (e.name) {
    case 'unitUpdate':
    case 'alertCreated':
    case 'alertAcknowledged':
    case 'alertResolved':
    case 'alertEscalated':
    case 'deviceStatusChange':
      return e.payload.unitId
    default:
      return assertNever(e)
  }
}

export function assertNever (x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`)
}

export function alertEvent (name: 'alertCreated' | 'alertAcknowledged' | 'alertResolved' | 'alertEscalated', a: Alert): ChangeEvent {
  return {
    name,
    payload: { organizationId: a.organizationId, alertId: a.id, unitId: a.unitId, type: a.type, severity: a.severity, status: a.status }
  }
}
