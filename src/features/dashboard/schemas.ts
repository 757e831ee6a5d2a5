import { Type } from 'typebox'

const uuid = Type.String({ format: 'uuid' })
const count = Type.Integer({ minimum: 0 })

export const OrgParams = Type.Object({ orgId: uuid })
export const UnitParams = Type.Object({ orgId: uuid, unitId: uuid })
export const AlertCountQuery = Type.Object({ unitId: Type.Optional(uuid) }, { additionalProperties: false })

export const UnitCounts = Type.Object({ total: count, normal: count, too_hot: count, too_cold: count, offline: count })
export const AlertCounts = Type.Object({ unresolved: count, acknowledged: count, critical: count })
export const DeviceCounts = Type.Object({ total: count, online: count, offline: count })
const state = Type.Union([Type.Literal('normal'), Type.Literal('too_hot'), Type.Literal('too_cold'), Type.Literal('offline')])

export const DashboardStats = Type.Object({
  organizationId: uuid,
  unitCounts: UnitCounts,
  alertCounts: AlertCounts,
  deviceCounts: DeviceCounts,
  compliancePercentage: Type.Number(),
  siteCount: count,
  worstState: state,
  lastUpdated: Type.String({ format: 'date-time' })
})

export const TemperatureTrend = Type.Object({
  unitId: uuid,
  points: Type.Array(Type.Object({
    timestamp: Type.String({ format: 'date-time' }),
    temperature: Type.Number(),
    alarmState: Type.Union([Type.Literal('normal'), Type.Literal('too_hot'), Type.Literal('too_cold')])
  }))
})

export const cacheHeader = {
  'x-cache': Type.Union([Type.Literal('hit'), Type.Literal('miss'), Type.Literal('bypass')], {
    description: 'hit: from Redis; miss: loaded from PostgreSQL and stored; bypass: served from PostgreSQL without the cache'
  })
}
