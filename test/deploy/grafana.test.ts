import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Histogram, Registry } from 'prom-client'
import { parse } from 'yaml'
import { describe, expect, it } from 'vitest'
import { createCacheMetrics } from '../../src/features/cache/metrics.js'
import { createDashboardMetrics } from '../../src/features/dashboard/metrics.js'
import { createMetrics } from '../../src/infra/metrics.js'
import { useTestApp } from '../helpers/fixture.js'

// The Grafana dashboard is checked against the metrics coldboard registers: a renamed metric or a typo
// in a panel would otherwise show up as an empty panel, in production, after the fact. The same
// expressions are run against a real Prometheus in prometheus.test.ts (valid PromQL).

const root = path.resolve(import.meta.dirname, '../..')
const read = (file: string) => readFileSync(path.join(root, file), 'utf8')

interface Target { expr?: string, format?: string, datasource?: { uid?: string } }
interface Panel { id: number, type: string, title: string, datasource?: { type: string, uid: string }, targets?: Target[], panels?: Panel[] }
const dashboard = JSON.parse(read('deploy/grafana/dashboards/coldboard-cache.json')) as {
  uid: string
  title: string
  schemaVersion: number
  panels: Panel[]
  templating: { list: Array<{ name: string, query: string | { query: string }, datasource?: { uid: string } }> }
}
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row')

/**
 * Every series name coldboard exposes: metric names, and the _bucket/_sum/_count of its histograms. The app's
 * registry holds the metrics of src/infra/metrics.ts and those the cache and dashboard features register on it.
 */
function registeredNames (): Set<string> {
  const names = new Set<string>()
  const registry = new Registry()
  createMetrics(registry)
  createCacheMetrics(registry)
  createDashboardMetrics(registry)
  for (const metric of registry.getMetricsAsArray()) {
    const name = (metric as unknown as { name: string }).name
    names.add(name)
    if (metric instanceof Histogram) for (const s of ['_bucket', '_sum', '_count']) names.add(name + s)
  }
  return names
}
const registered = registeredNames()

/** The metrics of the app's registry by name, with their label names. */
function registeredMetrics (): Map<string, string[]> {
  const registry = new Registry()
  createMetrics(registry)
  createCacheMetrics(registry)
  createDashboardMetrics(registry)
  return new Map(registry.getMetricsAsArray().map((m) => {
    const { name, labelNames } = m as unknown as { name: string, labelNames: string[] }
    return [name, [...labelNames].sort()]
  }))
}

const keywords = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'inf', 'nan'])

/** Metric names a PromQL expression selects (selectors by name, and `__name__` matchers resolved against `known`). */
function metricNames (expr: string, known: Set<string>): string[] {
  const names: string[] = []
  for (const m of expr.matchAll(/__name__\s*(=~|=)\s*"([^"]*)"/g)) {
    const matched = m[1] === '=' ? [m[2]!] : [...known].filter((n) => new RegExp(`^(?:${m[2]})$`).test(n))
    names.push(...(matched.length > 0 ? matched : [`<no metric matches ${m[2]}>`]))
  }
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
  for (const m of bare.matchAll(/(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    if (!keywords.has(m[1]!.toLowerCase())) names.push(m[1]!)
  }
  return names
}

/** A Grafana variable query: `label_values(metric, label)` selects `metric`. */
function variableMetrics (query: string): string[] {
  const m = query.match(/^label_values\(\s*([^,]+?)\s*,\s*\w+\s*\)$/)
  if (!m) throw new Error(`unexpected variable query: ${query}`)
  return metricNames(m[1]!, registered)
}

describe('deploy/grafana/dashboards/coldboard-cache.json', () => {
  it('is a current Grafana dashboard on the provisioned Prometheus datasource', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36)
    expect(dashboard.uid).toBe('coldboard-cache')
    const provisioned = parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')) as { datasources: Array<{ uid: string }> }
    const uid = provisioned.datasources[0]!.uid
    expect(panels.length).toBeGreaterThan(8)
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid })
      expect(p.targets?.length, p.title).toBeGreaterThan(0)
      for (const t of p.targets!) expect(t.datasource?.uid ?? uid, p.title).toBe(uid)
    }
    const ids = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).map((p) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('queries only metrics that coldboard registers', () => {
    expect(registered.has('dashboard_cache_hit_total')).toBe(true)
    expect(registered.has('dashboard_request_seconds_bucket')).toBe(true)
    for (const p of panels) {
      for (const t of p.targets!) {
        const names = metricNames(t.expr ?? '', registered)
        expect(names.length, `${p.title}: ${t.expr}`).toBeGreaterThan(0)
        for (const name of names) expect(registered.has(name), `${p.title}: ${name}`).toBe(true)
      }
    }
    for (const v of dashboard.templating.list) {
      const query = typeof v.query === 'string' ? v.query : v.query.query
      for (const name of variableMetrics(query)) expect(registered.has(name), `$${v.name}: ${name}`).toBe(true)
    }
  })

  it('shows the hit rate per query type, latency heatmaps, invalidations, database loads, errors, bypasses and Redis', () => {
    const find = (pred: (p: Panel, exprs: string) => boolean) =>
      panels.filter((p) => pred(p, p.targets!.map((t) => t.expr).join('\n'))).map((p) => p.title)
    expect(find((_, e) => ['hit', 'miss', 'bypass'].every((o) => e.includes(`sum by (query_type) (rate(dashboard_cache_${o}_total{`)))).toEqual(['Hit rate by query type'])
    for (const bucket of ['dashboard_request_seconds_bucket', 'dashboard_cache_latency_seconds_bucket']) {
      const heatmaps = panels.filter((p) => p.type === 'heatmap' && p.targets!.some((t) => t.expr!.includes(bucket) && t.format === 'heatmap'))
      expect(heatmaps.length, bucket).toBe(1)
    }
    expect(find((_, e) => /histogram_quantile\(0\.99, [^\n]*dashboard_cache_invalidation_seconds_bucket/.test(e))).not.toEqual([])
    expect(find((_, e) => /sum by \(query_type\) \(rate\(dashboard_db_load_total/.test(e))).not.toEqual([])
    expect(find((_, e) => /sum by \(operation\) \(rate\(dashboard_cache_error_total/.test(e))).not.toEqual([])
    expect(find((_, e) => /sum by \(reason\) \(rate\(dashboard_cache_bypass_total/.test(e))).not.toEqual([])
    expect(find((_, e) => /coldboard_redis_up/.test(e))).not.toEqual([])
  })

  it('names the same metrics as docs/caching.md, and the docs name only registered ones', () => {
    const section = read('docs/caching.md').split(/^## /m).find((s) => s.startsWith('Metrics'))!
    const documented = [...section.matchAll(/^\| `([a-z_]+)(?:\{[^`]*\})?` \|/gm)].map((m) => m[1]!)
    expect(documented.length).toBeGreaterThanOrEqual(10)
    for (const name of documented) expect(registered.has(name), `docs/caching.md: ${name}`).toBe(true)
    const used = new Set(panels.flatMap((p) => p.targets!.flatMap((t) => metricNames(t.expr!, registered))))
    for (const name of documented) {
      expect([...used].some((u) => u === name || u.startsWith(`${name}_`)), `no panel shows ${name}`).toBe(true)
    }
  })
})

describe('docs/operations.md metrics reference (an app with every feature: PGlite, the shared Redis)', () => {
  const ctx = useTestApp({ backend: 'pglite', redis: true })

  it("has every metric the app registers, and only those, with its labels (Node's default metrics aside)", () => {
    const section = read('docs/operations.md').split(/^## /m).find((s) => s.startsWith('Metrics reference'))!
    const rows = [...section.matchAll(/^\| `([a-z_]+)` \| \w+ \| ([^|]*) \|/gm)]
    const documented = new Map(rows.map((m) => [m[1]!, [...m[2]!.matchAll(/`(\w+)`/g)].map((l) => l[1]!).sort()]))
    const own = ctx.app.metrics.registry.getMetricsAsArray()
      .map((m) => m as unknown as { name: string, labelNames: string[] })
      .filter((m) => /^(coldboard|dashboard)_/.test(m.name))
    expect(own.length).toBeGreaterThanOrEqual(registeredMetrics().size)
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(own.map((m) => [m.name, [...m.labelNames].sort()])))
  })
})
