import { Type } from 'typebox'

const uuid = Type.String({ format: 'uuid' })
const count = Type.Integer({ minimum: 0 })

export const OrgParams = Type.Object({ orgId: uuid })
export const UnitParams = Type.Object({ orgId: uuid, unitId: uuid })
export const AlertCountQuery = Type.Object({ unitId: Type.Optional(uuid) }, { additionalProperties: false })

export const UnitCounts = Type.Object({ total: count, normal: count, too_hot: count, too_cold: count, offline: count }, {
  examples: [{ total: 12, normal: 9, too_hot: 1, too_cold: 1, offline: 1 }]
})
export const AlertCounts = Type.Object({ unresolved: count, acknowledged: count, critical: count }, {
  examples: [{ unresolved: 3, acknowledged: 1, critical: 1 }]
})
export const DeviceCounts = Type.Object({ total: count, online: count, offline: count }, {
  examples: [{ total: 12, online: 11, offline: 1 }]
})
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
}, {
  examples: [{
    organizationId: '3644a9b7-7628-4ad1-ae5b-39a327c62968',
    unitCounts: { total: 12, normal: 9, too_hot: 1, too_cold: 1, offline: 1 },
    alertCounts: { unresolved: 3, acknowledged: 1, critical: 1 },
    deviceCounts: { total: 12, online: 11, offline: 1 },
    compliancePercentage: 97.4,
    siteCount: 2,
    worstState: 'offline',
    lastUpdated: '2026-12-01T09:30:00.000Z'
  }]
})

export const TemperatureTrend = Type.Object({
  unitId: uuid,
  points: Type.Array(Type.Object({
    timestamp: Type.String({ format: 'date-time' }),
    temperature: Type.Number(),
    alarmState: Type.Union([Type.Literal('normal'), Type.Literal('too_hot'), Type.Literal('too_cold')])
  }))
}, {
  examples: [{
    unitId: '8b0f3c1e-2f43-4f7e-9d7a-6f1b2c3d4e5f',
    points: [
      { timestamp: '2026-12-01T09:20:00.000Z', temperature: 4.12, alarmState: 'normal' },
      { timestamp: '2026-12-01T09:25:00.000Z', temperature: 8.64, alarmState: 'too_hot' }
    ]
  }]
})

export const cacheHeader = {
  'x-cache': Type.Union([Type.Literal('hit'), Type.Literal('miss'), Type.Literal('bypass')], {
    description: 'hit: from Redis; miss: loaded from PostgreSQL and stored; bypass: served from PostgreSQL without the cache'
  })
}
