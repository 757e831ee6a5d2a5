// Reading the server's Prometheus text (GET /metrics) for the operations panel. Pure functions:
// the e2e tests import them too.

export interface Sample { name: string, labels: Record<string, string>, value: number }

/** Samples of the Prometheus text exposition format (comments and malformed lines skipped). */
export function parsePrometheus (text: string): Sample[] {
  const out: Sample[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line)
    if (!m) continue
    const value = parseValue(m[3]!)
    if (value === null) continue
    out.push({ name: m[1]!, labels: m[2] ? parseLabels(m[2]) : {}, value })
  }
  return out
}

function parseValue (s: string): number | null {
  if (s === '+Inf') return Infinity
  if (s === '-Inf') return -Infinity
  const v = Number(s)
  return Number.isNaN(v) && s !== 'NaN' ? null : v
}

// `{a="x",b="y \"quoted\", with comma"}`: values may hold escaped quotes, commas and braces.
function parseLabels (block: string): Record<string, string> {
  const labels: Record<string, string> = {}
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g
  for (const m of block.slice(1, -1).matchAll(re)) {
    labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
  }
  return labels
}

/** Sum of every sample of `name`, across all label sets. */
export function total (samples: Sample[], name: string): number {
  let sum = 0
  for (const s of samples) if (s.name === name) sum += s.value
  return sum
}

export interface HistogramSummary {
  count: number
  /** Seconds; null without observations. */
  mean: number | null
  /** Seconds, interpolated within the bucket as Prometheus' histogram_quantile does; null without observations. */
  p95: number | null
}

/** A histogram's observations merged across label sets. */
export function histogram (samples: Sample[], name: string, q = 0.95): HistogramSummary {
  const count = total(samples, `${name}_count`)
  const sum = total(samples, `${name}_sum`)
  const buckets = new Map<number, number>()
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || s.labels.le === undefined) continue
    const le = parseValue(s.labels.le)
    if (le !== null) buckets.set(le, (buckets.get(le) ?? 0) + s.value)
  }
  if (count === 0) return { count: 0, mean: null, p95: null }
  return { count, mean: sum / count, p95: quantile([...buckets].sort((a, b) => a[0] - b[0]), q) }
}

function quantile (buckets: Array<[number, number]>, q: number): number | null {
  const last = buckets[buckets.length - 1]
  if (!last || last[1] === 0) return null
  const rank = q * last[1]
  let lower = 0
  let below = 0
  for (const [le, cumulative] of buckets) {
    if (cumulative >= rank) {
      if (le === Infinity) return lower // beyond the largest finite bucket: its bound is the best estimate
      return lower + (le - lower) * ((rank - below) / Math.max(cumulative - below, 1e-12))
    }
    lower = le
    below = cumulative
  }
  return lower
}

export interface Operations {
  hits: number
  misses: number
  bypasses: number
  /** hits / (hits + misses + bypasses) since the server started; null before the first dashboard read. */
  hitRate: number | null
  request: HistogramSummary
  invalidation: HistogramSummary
}

export function operations (text: string): Operations {
  const samples = parsePrometheus(text)
  const hits = total(samples, 'dashboard_cache_hit_total')
  const misses = total(samples, 'dashboard_cache_miss_total')
  const bypasses = total(samples, 'dashboard_cache_bypass_total')
  const reads = hits + misses + bypasses
  return {
    hits,
    misses,
    bypasses,
    hitRate: reads === 0 ? null : hits / reads,
    request: histogram(samples, 'dashboard_request_seconds'),
    invalidation: histogram(samples, 'dashboard_cache_invalidation_seconds')
  }
}
