/** One scrape of /metrics: series name → list of { labels, value }. */
export type Scrape = Map<string, Array<{ labels: Record<string, string>, value: number }>>

/** Parses the Prometheus text format (what prom-client writes; no exemplars, no timestamps). */
export function parsePrometheus (text: string): Scrape {
  const out: Scrape = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    const value = m[3] === '+Inf' ? Infinity : Number(m[3])
    const list = out.get(m[1]!)
    if (list) list.push({ labels, value })
    else out.set(m[1]!, [{ labels, value }])
  }
  return out
}

/** Adds scrapes of several instances together, series by series. */
export function mergeScrapes (scrapes: Scrape[]): Scrape {
  const out: Scrape = new Map()
  for (const s of scrapes) {
    for (const [name, series] of s) {
      const list = out.get(name) ?? []
      for (const x of series) {
        const same = list.find((y) => sameLabels(y.labels, x.labels))
        if (same) same.value += x.value
        else list.push({ labels: { ...x.labels }, value: x.value })
      }
      out.set(name, list)
    }
  }
  return out
}

function sameLabels (a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a)
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k])
}

/** Sum of a series (optionally only where `filter` holds) between two scrapes. */
export function delta (before: Scrape, after: Scrape, name: string, filter: (labels: Record<string, string>) => boolean = () => true): number {
  const sum = (s: Scrape) => (s.get(name) ?? []).filter((x) => filter(x.labels)).reduce((a, x) => a + x.value, 0)
  return sum(after) - sum(before)
}

/** Per-label sums of a counter between two scrapes, e.g. hits by query_type. */
export function deltaBy (before: Scrape, after: Scrape, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const x of after.get(name) ?? []) {
    const key = x.labels[label] ?? ''
    const prev = (before.get(name) ?? []).find((y) => sameLabels(y.labels, x.labels))?.value ?? 0
    out[key] = (out[key] ?? 0) + x.value - prev
  }
  return out
}

export interface HistogramDelta { count: number, sum: number, buckets: Array<{ le: number, count: number }> }

/** A histogram's observations between two scrapes (cumulative buckets, summed over the labels `filter` keeps). */
export function histogramDelta (before: Scrape, after: Scrape, name: string, filter: (labels: Record<string, string>) => boolean = () => true): HistogramDelta {
  const les = new Map<number, number>()
  for (const x of after.get(`${name}_bucket`) ?? []) {
    if (!filter(x.labels)) continue
    const le = x.labels.le === '+Inf' ? Infinity : Number(x.labels.le)
    const prev = (before.get(`${name}_bucket`) ?? []).find((y) => sameLabels(y.labels, x.labels))?.value ?? 0
    les.set(le, (les.get(le) ?? 0) + x.value - prev)
  }
  return {
    count: delta(before, after, `${name}_count`, filter),
    sum: delta(before, after, `${name}_sum`, filter),
    buckets: [...les].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le)
  }
}

/**
 * The q-quantile of a histogram delta, interpolated linearly inside its bucket like PromQL's
 * histogram_quantile (so it is an estimate bounded by the bucket edges). null without observations.
 */
export function histogramQuantile (h: HistogramDelta, q: number): number | null {
  const total = h.buckets.at(-1)?.count ?? 0
  if (total <= 0) return null
  const rank = q * total
  let prevLe = 0
  let prevCount = 0
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe
      const inBucket = b.count - prevCount
      return inBucket <= 0 ? b.le : prevLe + (b.le - prevLe) * ((rank - prevCount) / inBucket)
    }
    prevLe = b.le
    prevCount = b.count
  }
  return prevLe
}

/** Share of observations at or under `le` (an exact bucket edge). */
export function fractionAtOrBelow (h: HistogramDelta, le: number): number | null {
  const total = h.buckets.at(-1)?.count ?? 0
  const b = h.buckets.find((x) => x.le === le)
  return total > 0 && b ? b.count / total : null
}
