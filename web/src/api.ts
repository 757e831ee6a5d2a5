// The coldboard HTTP API as the page uses it (the OpenAPI document at /docs); errors are `{ error: { code, message } }`.

export type UnitState = 'normal' | 'too_hot' | 'too_cold' | 'offline'
export type CacheOutcome = 'hit' | 'miss' | 'bypass'

export interface DashboardStats {
  organizationId: string
  unitCounts: { total: number, normal: number, too_hot: number, too_cold: number, offline: number }
  alertCounts: { unresolved: number, acknowledged: number, critical: number }
  deviceCounts: { total: number, online: number, offline: number }
  compliancePercentage: number
  siteCount: number
  worstState: UnitState
  lastUpdated: string
}

export interface Unit {
  id: string
  siteId: string
  name: string
  unitType: string
  tempMin: number
  tempMax: number
  state: UnitState
  lastTemperature: number | null
  lastReadingAt: string | null
  isActive: boolean
}

export interface Site { id: string, name: string }

export interface Alert {
  id: string
  unitId: string
  type: 'temperature_excursion' | 'offline'
  severity: 'warning' | 'critical'
  status: 'active' | 'acknowledged' | 'resolved'
  triggerTemperature: number | null
  threshold: 'temp_min' | 'temp_max' | null
  triggeredAt: string
  acknowledgedAt: string | null
}

export interface TemperatureTrend {
  unitId: string
  points: Array<{ timestamp: string, temperature: number, alarmState: 'normal' | 'too_hot' | 'too_cold' }>
}

export class ApiError extends Error {
  constructor (readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

export interface Reply<T> { data: T, cache: CacheOutcome | null }

/** A client bound to one token and organization; `onUnauthorized` hears of a 401 (expired or revoked token). */
export function createApi (opts: { token: string, orgId: string, onUnauthorized: (err: ApiError) => void }) {
  const org = `/api/orgs/${encodeURIComponent(opts.orgId)}`

  async function request<T> (path: string, init: RequestInit = {}): Promise<Reply<T>> {
    // Default fetch cache mode on purpose: 'no-store'/'reload' would send `Cache-Control: no-cache`,
    // which the API treats as a forced refresh that bypasses Redis.
    let res: Response
    try {
      res = await fetch(path, { ...init, headers: { authorization: `Bearer ${opts.token}`, ...init.headers } })
    } catch {
      throw new ApiError(0, 'NETWORK', 'The server cannot be reached.')
    }
    const body: unknown = res.status === 204 ? null : await res.json().catch(() => null)
    if (!res.ok) {
      const e = (body as { error?: { code?: string, message?: string } } | null)?.error
      const err = new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? `${res.status} ${res.statusText}`)
      if (res.status === 401) opts.onUnauthorized(err)
      throw err
    }
    const cache = res.headers.get('x-cache')
    return { data: body as T, cache: cache === 'hit' || cache === 'miss' || cache === 'bypass' ? cache : null }
  }

  /** Every page of a list: the API answers at most 1000 rows and announces the next page in `Link: <…>; rel="next"`. */
  async function requestAll<T> (path: string): Promise<Reply<T[]>> {
    const rows: T[] = []
    let next: string | null = path
    let cache: CacheOutcome | null = null
    for (let pages = 0; next !== null && pages < 100; pages++) {
      let res: Response
      try {
        res = await fetch(next, { headers: { authorization: `Bearer ${opts.token}` } })
      } catch {
        throw new ApiError(0, 'NETWORK', 'The server cannot be reached.')
      }
      if (!res.ok) return request<T[]>(next) // the same error handling as any request
      rows.push(...await res.json() as T[])
      cache = null
      next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1] ?? null
    }
    return { data: rows, cache }
  }

  return {
    dashboard: () => request<DashboardStats>(`${org}/dashboard`),
    units: () => requestAll<Unit>(`${org}/units`),
    sites: () => request<Site[]>(`${org}/sites`),
    trend: (unitId: string) => request<TemperatureTrend>(`${org}/units/${encodeURIComponent(unitId)}/temperature-trends`),
    /** Unresolved alerts (active and acknowledged), newest first. */
    async openAlerts (): Promise<Alert[]> {
      const [active, acked] = await Promise.all([
        requestAll<Alert>(`${org}/alerts?status=active`),
        requestAll<Alert>(`${org}/alerts?status=acknowledged`)
      ])
      return [...active.data, ...acked.data].sort((a, b) => b.triggeredAt.localeCompare(a.triggeredAt))
    },
    alertAction: (alertId: string, action: 'acknowledge' | 'resolve') =>
      request<Alert>(`${org}/alerts/${encodeURIComponent(alertId)}/${action}`, { method: 'POST' }),
    /** Prometheus text of the server (public, no organization in it). */
    async metrics (): Promise<string> {
      const res = await fetch('/metrics').catch(() => null)
      if (!res?.ok) throw new ApiError(res?.status ?? 0, 'METRICS', 'Metrics are unavailable.')
      return res.text()
    }
  }
}
export type Api = ReturnType<typeof createApi>
