import { Type, type Static } from 'typebox'
import { alertSeverityEnum, alertStatusEnum, alertTypeEnum, thresholdEnum } from '../../db/schema.js'
import { DateTime, PageQuery, Uuid } from '../../http/schemas.js'

// TypeBox schemas for the alert endpoints: request validation and the OpenAPI document at /docs.
export { ErrorResponse, OrgParams } from '../../http/schemas.js'
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

export const AlertParams = Type.Object({ orgId: Uuid, alertId: Uuid }, { additionalProperties: false })

export const ListAlertsQuery = Type.Object({
  status: Type.Optional(AlertStatus),
  unitId: Type.Optional(Uuid),
  ...PageQuery
}, { additionalProperties: false })
export type AlertFilter = Static<typeof ListAlertsQuery>
