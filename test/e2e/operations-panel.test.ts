import { beforeAll, describe, expect, it } from 'vitest'
import { operations, parsePrometheus } from '../../web/src/metrics.js'
import { useTestApp } from '../helpers/fixture.js'
import type { OrgFixture } from '../helpers/fixtures.js'

// The page's operations panel reads the server's real /metrics text: its figures must be the ones
// the server counted (hit rate = hits / all dashboard reads; latency means = _sum / _count).

describe('operations panel figures from /metrics', () => {
  const ctx = useTestApp({ redis: true })
  let fx: OrgFixture

  beforeAll(async () => {
    fx = await ctx.org({ units: 2 })
  })

  const metricsText = async () => (await ctx.app.inject({ method: 'GET', url: '/metrics' })).body

  it('shows no rate before any dashboard read, then the server\'s own counts', async () => {
    const before = operations(await metricsText())
    expect(before.hitRate).toBeNull()
    expect(before.request).toEqual({ count: 0, mean: null, p95: null })

    const headers = ctx.bearer({ [fx.org.id]: 'viewer' })
    const outcomes: string[] = []
    for (let i = 0; i < 4; i++) {
      const res = await ctx.app.inject({ method: 'GET', url: `/api/orgs/${fx.org.id}/dashboard`, headers })
      expect(res.statusCode).toBe(200)
      outcomes.push(String(res.headers['x-cache']))
    }
    expect(outcomes).toEqual(['miss', 'hit', 'hit', 'hit'])
    // One event through the write path: one invalidation.
    await ctx.app.changes.commit(async () => ({
      value: undefined,
      events: [{
        name: 'unitUpdate',
        payload: { organizationId: fx.org.id, unitId: fx.units[0]!.id, state: 'too_hot', previousState: 'normal', lastTemperature: 9, lastReadingAt: new Date().toISOString() }
      }]
    }))

    const text = await metricsText()
    const ops = operations(text)
    expect({ hits: ops.hits, misses: ops.misses, bypasses: ops.bypasses, hitRate: ops.hitRate }).toEqual({ hits: 3, misses: 1, bypasses: 0, hitRate: 0.75 })
    expect(ops.request.count).toBe(4)
    expect(ops.invalidation.count).toBe(1)

    // Means are _sum / _count, summed over every label set of the histogram.
    const samples = parsePrometheus(text)
    const sumOf = (name: string) => samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0)
    expect(ops.request.mean).toBeCloseTo(sumOf('dashboard_request_seconds_sum') / 4, 12)
    expect(ops.invalidation.mean).toBeCloseTo(sumOf('dashboard_cache_invalidation_seconds_sum'), 12)
    // p95 lies within the histogram's observed range: above 0, at most the largest finite bucket bound.
    expect(ops.request.p95).toBeGreaterThan(0)
    expect(ops.request.p95).toBeLessThanOrEqual(Math.max(...samples
      .filter((s) => s.name === 'dashboard_request_seconds_bucket' && s.labels.le !== '+Inf').map((s) => Number(s.labels.le))))
  })

  it('reads labels with escaped quotes and interpolates p95 like histogram_quantile', () => {
    const text = [
      '# HELP x_seconds demo',
      '# TYPE x_seconds histogram',
      'x_seconds_bucket{le="0.01",q="a \\"b\\", {c}"} 50',
      'x_seconds_bucket{le="0.1",q="a \\"b\\", {c}"} 100',
      'x_seconds_bucket{le="+Inf",q="a \\"b\\", {c}"} 100',
      'x_seconds_sum{q="a \\"b\\", {c}"} 2.5',
      'x_seconds_count{q="a \\"b\\", {c}"} 100'
    ].join('\n')
    expect(parsePrometheus(text)[0]).toEqual({ name: 'x_seconds_bucket', labels: { le: '0.01', q: 'a "b", {c}' }, value: 50 })
    const h = operations(text.replaceAll('x_seconds', 'dashboard_request_seconds')).request
    expect(h.count).toBe(100)
    expect(h.mean).toBeCloseTo(0.025, 12)
    // rank 95 of 100 falls in (0.01, 0.1], 45 of its 50 observations in: 0.01 + 0.09 × 45/50.
    expect(h.p95).toBeCloseTo(0.091, 12)
  })
})
