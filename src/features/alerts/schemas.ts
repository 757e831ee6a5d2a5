import { Type, type Static } from 'typebox'
import { alertSeverityEnum, alertStatusEnum, alertTypeEnum, thresholdEnum } from '../../db/schema.js'

// TypeBox schemas for the alert endpoints: request validation and the OpenAPI document at /docs.

const Uuid = Type.String({ format: 'uuid' })
const DateTime = Type.String({ format: 'date-time' })
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])
const AlertStatus = Type.Enum([...alertStatusEnum.enumValues])

export const Alert = Type.Object({
  id: Uuid,
  organizationId: Uuid,
  unitId: Uuid,
  type: Type.Enum([...alertTypeEnum.enumValues]),
  severity: Type.Enum([...alertSeverityEnum.enumValues]),
  status: AlertStatus,
  triggerTemperature: Nullable(Type.Number({ description: '°C; null for offline alerts' })),
  threshold: Nullable(Type.Enum([...thresholdEnum.enumValues])),
  triggeredAt: DateTime,
  acknowledgedAt: Nullable(DateTime),
  resolvedAt: Nullable(DateTime)
})
export type AlertJson = Static<typeof Alert>

export const OrgParams = Type.Object({ orgId: Uuid })
export const AlertParams = Type.Object({ orgId: Uuid, alertId: Uuid })

export const ListAlertsQuery = Type.Object({
  status: Type.Optional(AlertStatus),
  unitId: Type.Optional(Uuid),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 }))
}, { additionalProperties: false })
export type AlertFilter = Static<typeof ListAlertsQuery>

export const ErrorResponse = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String() })
})
