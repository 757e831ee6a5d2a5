/** The five panels a viewer loads, by the name the report uses. */
export const panels = ['overview', 'unitCounts', 'alertCounts', 'devicesOnline', 'unitTrend'] as const
export type Panel = typeof panels[number]

export const panelPaths: Record<Panel, string> = {
  overview: 'GET /api/orgs/:orgId/dashboard',
  unitCounts: 'GET /api/orgs/:orgId/dashboard/units/status',
  alertCounts: 'GET /api/orgs/:orgId/dashboard/alerts/count',
  devicesOnline: 'GET /api/orgs/:orgId/dashboard/devices/online',
  unitTrend: 'GET /api/orgs/:orgId/units/:unitId/temperature-trends'
}

export interface Percentiles { n: number, mean: number, p50: number, p95: number, p99: number, max: number }
export type Outcome = 'hit' | 'miss' | 'bypass' | 'error'
export type Kind = 'poll' | 'refetch'

const round = (x: number) => Math.round(x * 1000) / 1000

/** Nearest-rank percentiles of milliseconds; zeros when there are none. */
export function percentiles (ms: ArrayLike<number>): Percentiles {
  const n = ms.length
  if (n === 0) return { n: 0, mean: 0, p50: 0, p95: 0, p99: 0, max: 0 }
  const s = Float64Array.from(ms).sort()
  const at = (q: number) => s[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!
  let sum = 0
  for (let i = 0; i < n; i++) sum += s[i]!
  return { n, mean: round(sum / n), p50: round(at(0.5)), p95: round(at(0.95)), p99: round(at(0.99)), max: round(s[n - 1]!) }
}

/** Client-side latencies per panel, with the `x-cache` each response carried and why it was requested. */
export function createRecorder () {
  let recording = false
  const ms = Object.fromEntries(panels.map((p) => [p, [] as number[]])) as Record<Panel, number[]>
  const hitMs = Object.fromEntries(panels.map((p) => [p, [] as number[]])) as Record<Panel, number[]>
  const outcomes = Object.fromEntries(panels.map((p) => [p, { hit: 0, miss: 0, bypass: 0, error: 0 }])) as Record<Panel, Record<Outcome, number>>
  const byKind: Record<Kind, Record<Outcome, number>> = { poll: { hit: 0, miss: 0, bypass: 0, error: 0 }, refetch: { hit: 0, miss: 0, bypass: 0, error: 0 } }
  const kindMs: Record<Kind, number[]> = { poll: [], refetch: [] }

  return {
    start () { recording = true },
    stop () { recording = false },
    record (panel: Panel, latencyMs: number, outcome: Outcome, kind: Kind): void {
      if (!recording) return
      outcomes[panel][outcome]++
      byKind[kind][outcome]++
      if (outcome === 'error') return
      ms[panel].push(latencyMs)
      kindMs[kind].push(latencyMs)
      if (outcome === 'hit') hitMs[panel].push(latencyMs)
    },
    /** Raw samples (for the plots), every panel and all together. */
    samples (): Record<Panel | 'all', number[]> {
      return { ...ms, all: panels.flatMap((p) => ms[p]) }
    },
    summary () {
      const latency = Object.fromEntries([...panels.map((p) => [p, percentiles(ms[p])]), ['all', percentiles(panels.flatMap((p) => ms[p]))]]) as Record<Panel | 'all', Percentiles>
      const hitsOnly = Object.fromEntries([...panels.map((p) => [p, percentiles(hitMs[p])]), ['all', percentiles(panels.flatMap((p) => hitMs[p]))]]) as Record<Panel | 'all', Percentiles>
      const total = { hit: 0, miss: 0, bypass: 0, error: 0 }
      for (const p of panels) for (const k of Object.keys(total) as Outcome[]) total[k] += outcomes[p][k]
      // Every panel together, by why it was requested: a poll at the viewer's own phase, or a refetch on an event.
      const latencyByKind: Record<Kind, Percentiles> = { poll: percentiles(kindMs.poll), refetch: percentiles(kindMs.refetch) }
      return { latency, hitsOnly, latencyByKind, outcomes: { ...outcomes, all: total }, byKind: { poll: { ...byKind.poll }, refetch: { ...byKind.refetch } } }
    }
  }
}
export type Recorder = ReturnType<typeof createRecorder>
export type RecorderSummary = ReturnType<Recorder['summary']>
