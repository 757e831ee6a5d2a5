import type { UnitState } from '../../db/schema.js'

export interface UnitCounts { total: number, normal: number, too_hot: number, too_cold: number, offline: number }
/** unresolved = active + acknowledged; acknowledged = acknowledged only; critical = unresolved with severity critical. */
export interface AlertCounts { unresolved: number, acknowledged: number, critical: number }
export interface DeviceCounts { total: number, online: number, offline: number }

export interface TrendPoint {
  /** Start of the 5-minute bucket, ISO 8601. */
  timestamp: string
  /** Average of the bucket's readings, two decimals. */
  temperature: number
  /** too_hot when any reading of the bucket was above temp_max, too_cold when any was below temp_min. */
  alarmState: 'normal' | 'too_hot' | 'too_cold'
}
export interface TemperatureTrend { unitId: string, points: TrendPoint[] }

/** The organization's panel counts, as the overview's statement reads them in one snapshot. */
export interface OrgCounts { unitCounts: UnitCounts, alertCounts: AlertCounts, deviceCounts: DeviceCounts }

export interface DashboardStats {
  organizationId: string
  unitCounts: UnitCounts
  alertCounts: AlertCounts
  deviceCounts: DeviceCounts
  /** Share of the last 24 h's readings inside their unit's [temp_min, temp_max], one decimal; 100 with none. */
  compliancePercentage: number
  siteCount: number
  /** offline > too_hot > too_cold > normal over active units; normal when there are none. */
  worstState: UnitState
  lastUpdated: string
}

/** The dashboard's query types, one per cached read; `unitId` only for the per-unit ones. */
export interface DashboardQueries {
  unitsStatus (orgId: string): Promise<UnitCounts>
  /** For one unit: null when the unit does not exist in the organization. */
  alertsCount (orgId: string, unitId?: string): Promise<AlertCounts | null>
  devicesOnline (orgId: string): Promise<DeviceCounts>
  /** null when the unit does not exist in the organization. */
  temperatureTrends (orgId: string, unitId: string): Promise<TemperatureTrend | null>
  stats (orgId: string): Promise<DashboardStats>
}
