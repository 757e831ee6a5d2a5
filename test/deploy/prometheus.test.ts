import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
import { useTestApp } from '../helpers/fixture.js'
import { freePort, waitFor } from '../helpers/redis.js'

// The alert rules and the Prometheus configuration of deploy/ are checked by Debian's promtool, and a
// real Prometheus scrapes a real coldboard with the deployment's scrape job and rules.

const root = path.resolve(import.meta.dirname, '../..')
const alertsFile = path.join(root, 'deploy/prometheus/alerts.yml')
const read = (file: string) => readFileSync(path.join(root, file), 'utf8')

/** The binary on PATH, or a failure that says how to get it (never a silent skip). */
function requireBinary (name: string): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, name)
    if (dir && existsSync(file)) return file
  }
  throw new Error(`${name} is not installed: install Debian's "prometheus" package (scripts/ensure-services.sh does, as root)`)
}

async function run (file: string, args: string[]): Promise<{ code: number, output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: stdout + stderr })
    })
  })
}

interface Rule { alert: string, expr: string, for?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
const alertRules = (parse(read('deploy/prometheus/alerts.yml')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules)

/** deploy/prometheus/prometheus.yml with the rule file at its path in this checkout, and `change` applied. */
function localPrometheusConfig (change: (config: Record<string, any>) => void = () => {}): string {
  const config = parse(read('deploy/prometheus/prometheus.yml')) as Record<string, any>
  expect(config.rule_files).toEqual(['/etc/prometheus/alerts.yml'])
  config.rule_files = [alertsFile]
  change(config)
  return stringify(config)
}

describe('promtool', () => {
  it('accepts the alert rules', async () => {
    const { code, output } = await run(requireBinary('promtool'), ['check', 'rules', alertsFile])
    expect(output).toMatch(new RegExp(`SUCCESS: ${alertRules.length} rules found`))
    expect(code).toBe(0)
  })

  it('fires each alert when it should and not otherwise (alerts.test.yml)', async () => {
    const { code, output } = await run(requireBinary('promtool'), ['test', 'rules', path.join(root, 'deploy/prometheus/alerts.test.yml')])
    expect(output).toMatch(/SUCCESS/)
    expect(code, output).toBe(0)
    // Every alert is exercised by a test that expects it to fire.
    const tests = parse(read('deploy/prometheus/alerts.test.yml')) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string, exp_alerts: unknown[] }> }> }
    const firing = new Set(tests.tests.flatMap((t) => t.alert_rule_test ?? []).filter((t) => t.exp_alerts.length > 0).map((t) => t.alertname))
    expect([...firing].sort()).toEqual(alertRules.map((r) => r.alert).sort())
  })

  it('accepts the Prometheus configuration (rule file path made local)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cb-promtool-'))
    try {
      const file = path.join(dir, 'prometheus.yml')
      writeFileSync(file, localPrometheusConfig())
      const { code, output } = await run(requireBinary('promtool'), ['check', 'config', file])
      expect(output).toMatch(/SUCCESS: 1 rule files found/)
      expect(code, output).toBe(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('has the alerts operators rely on, each with a severity and a summary', () => {
    const byName = new Map(alertRules.map((r) => [r.alert, r]))
    expect([...byName.keys()]).toEqual(expect.arrayContaining([
      'DashboardCacheHitRateLow', 'DashboardCacheErrors', 'RedisDown', 'DashboardInvalidationSlow', 'DashboardDatabaseLoadDoubled'
    ]))
    expect(byName.get('DashboardCacheHitRateLow')).toMatchObject({ for: '15m' })
    expect(byName.get('RedisDown')).toMatchObject({ expr: 'coldboard_redis_up == 0', for: '1m' })
    expect(byName.get('DashboardInvalidationSlow')!.expr).toMatch(/histogram_quantile\(0\.99, .*dashboard_cache_invalidation_seconds_bucket.*\) > 0\.5/)
    expect(byName.get('DashboardDatabaseLoadDoubled')!.expr).toMatch(/offset 1h/)
    for (const rule of alertRules) {
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.severity)
      expect(rule.annotations?.summary, rule.alert).toBeTruthy()
    }
    // docs/operations.md explains every alert.
    const ops = read('docs/operations.md')
    for (const rule of alertRules) expect(ops, rule.alert).toContain(rule.alert)
  })
})

// Each wait below has its own 30 s deadline with a precise message; the test timeout must not cut it short.
describe('a real Prometheus scraping coldboard with the deployment scrape job and rules', { timeout: 60_000 }, () => {
  const ctx = useTestApp({ redis: true, listen: true })
  let prometheus: ChildProcess | undefined
  let prometheusExit: Promise<unknown> = Promise.resolve()
  let prometheusExited = false
  let log = ''
  let tmp = ''
  let promUrl = ''
  let headers: Record<string, string> = {}
  let dashboardUrl = ''

  /** An instant query; fails at once if Prometheus rejects it (e.g. invalid PromQL). */
  async function query (expr: string): Promise<Array<{ metric: Record<string, string>, value: [number, string] }>> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`)
    const body = await res.json() as { status: string, error?: string, data: { result: Array<{ metric: Record<string, string>, value: [number, string] }> } }
    if (body.status !== 'success') throw new Error(`Prometheus rejected ${expr}: ${body.error}`)
    return body.data.result
  }

  /** Polls until `fn` returns a value (30 s deadline); a Prometheus that exited fails at once with its log. */
  async function eventually<T> (what: string, fn: () => Promise<T | undefined>): Promise<T> {
    let value: T | undefined
    let last: unknown
    try {
      await waitFor(async () => {
        if (prometheusExited) throw new Error(`prometheus exited (${prometheus!.exitCode ?? prometheus!.signalCode})`)
        value = await fn().catch((err: unknown) => { last = err; return undefined })
        return value !== undefined
      }, 30_000, what)
    } catch (err) {
      throw new Error(`${(err as Error).message} (last error: ${String(last)}); prometheus log:\n${log}`)
    }
    return value!
  }
  const series = (expr: string) => eventually(expr, async () => {
    const result = await query(expr)
    return result.length > 0 ? result : undefined
  })

  beforeAll(async () => {
    const binary = requireBinary('prometheus')
    const { org } = await ctx.org({ units: 2 })
    // A miss, a hit and a forced refresh (bypass) before the first scrape: the counters Prometheus sees
    // are exact, and every series exists from its first scrape on (rate() needs that).
    headers = ctx.bearer({ [org.id]: 'viewer' })
    dashboardUrl = `/api/orgs/${org.id}/dashboard`
    const outcomes = []
    for (const extra of [{}, {}, { 'cache-control': 'no-cache' }]) {
      outcomes.push((await ctx.app.inject({ url: dashboardUrl, headers: { ...headers, ...extra } })).headers['x-cache'])
    }
    expect(outcomes).toEqual(['miss', 'hit', 'bypass'])

    tmp = mkdtempSync(path.join(os.tmpdir(), 'cb-prometheus-'))
    const config = localPrometheusConfig((c) => {
      c.global = { ...c.global, scrape_interval: '1s', evaluation_interval: '1s' }
      const job = c.scrape_configs.find((j: { job_name: string }) => j.job_name === 'coldboard')
      job.static_configs = [{ ...job.static_configs[0], targets: [new URL(ctx.url).host] }]
      c.scrape_configs = [job]
    })
    writeFileSync(path.join(tmp, 'prometheus.yml'), config)
    const promPort = await freePort()
    promUrl = `http://127.0.0.1:${promPort}`
    prometheus = spawn(binary, [
      `--config.file=${path.join(tmp, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(tmp, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn'
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    prometheusExit = new Promise((resolve) => prometheus!.once('exit', () => { prometheusExited = true; resolve(undefined) }))
    prometheus.stdout!.on('data', (d: Buffer) => { log += d.toString() })
    prometheus.stderr!.on('data', (d: Buffer) => { log += d.toString() })
  })

  afterAll(async () => {
    if (prometheus && !prometheusExited) {
      prometheus.kill('SIGTERM')
      const timer = setTimeout(() => prometheus!.kill('SIGKILL'), 5000)
      await prometheusExit
      clearTimeout(timer)
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true })
  })

  it('answers the paths the deployment probes: /health/ready and /metrics', async () => {
    const ready = await fetch(`${ctx.url}/health/ready`)
    expect(ready.status).toBe(200)
    const metrics = await fetch(`${ctx.url}/metrics`)
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/)
    expect(await metrics.text()).toMatch(/^coldboard_redis_up 1$/m)
  })

  it('scrapes the app: Redis is up, with the instance and role labels of the job', async () => {
    const [up] = await series('coldboard_redis_up')
    expect(up!.value[1]).toBe('1')
    expect(up!.metric).toMatchObject({ job: 'coldboard', role: 'api', instance: '127.0.0.1' })
    const [target] = await series('up{job="coldboard"}')
    expect(target!.value[1]).toBe('1')
  })

  it('sees the reads exactly: one miss, one hit, one forced refresh, and the app\'s own database load count', async () => {
    const value = async (expr: string) => (await series(expr))[0]!.value[1]
    expect(await value('dashboard_cache_miss_total{query_type="stats"}')).toBe('1')
    expect(await value('dashboard_cache_hit_total{query_type="stats"}')).toBe('1')
    expect(await value('dashboard_cache_bypass_total{query_type="stats",reason="refresh"}')).toBe('1')
    expect(await value('dashboard_request_seconds_count{query_type="stats",cache="hit"}')).toBe('1')
    // How many queries one overview costs is the cache's business; Prometheus must report what the app counted.
    const loads = (await ctx.app.dashboard.metrics.dbLoad.get()).values.find((v) => v.labels.query_type === 'stats')!.value
    expect(loads).toBeGreaterThanOrEqual(2)
    expect(await value('dashboard_db_load_total{query_type="stats"}')).toBe(String(loads))
  })

  it('loads every alert rule and evaluates each without error', async () => {
    type Rules = { data: { groups: Array<{ rules: Array<{ name: string, health: string, lastError?: string, lastEvaluation: string }> }> } }
    const rules = await eventually('rule evaluations', async () => {
      const body = await (await fetch(`${promUrl}/api/v1/rules`)).json() as Rules
      const all = body.data.groups.flatMap((g) => g.rules)
      const evaluated = all.length > 0 && all.every((r) => !r.lastEvaluation.startsWith('0001-'))
      return evaluated ? all : undefined
    })
    expect(rules.map((r) => r.name).sort()).toEqual(alertRules.map((r) => r.alert).sort())
    for (const rule of rules) expect({ name: rule.name, health: rule.health, error: rule.lastError ?? '' }).toEqual({ name: rule.name, health: 'ok', error: '' })
  })

  it('accepts every query of the Grafana dashboard', async () => {
    // Two samples at least, so that every rate() has data to compute (some errors only show then).
    await series('count_over_time(coldboard_redis_up[1m]) >= 2')
    const dashboard = JSON.parse(read('deploy/grafana/dashboards/coldboard-cache.json')) as { panels: Array<{ title: string, targets?: Array<{ expr: string }>, panels?: unknown[] }> }
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })))
    expect(exprs.length).toBeGreaterThan(10)
    for (const { title, expr } of exprs) {
      // Grafana's variables as Grafana would expand them ("All" is .*).
      const promql = expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*').replaceAll('$query_type', '.*')
      await expect(query(promql), title).resolves.toBeDefined()
    }
  })

  it('computes the hit rate panels as hit / (hit + miss + bypass)', async () => {
    const dashboard = JSON.parse(read('deploy/grafana/dashboards/coldboard-cache.json')) as { panels: Array<{ title: string, targets?: Array<{ expr: string }> }> }
    const panelExpr = (title: string) => dashboard.panels.find((p) => p.title === title)!.targets![0]!.expr
      .replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*').replaceAll('$query_type', '.*')
    await series('dashboard_cache_bypass_total')
    // One more hit and one more bypass while Prometheus watches: over the window, half the reads hit.
    expect((await ctx.app.inject({ url: dashboardUrl, headers })).headers['x-cache']).toBe('hit')
    expect((await ctx.app.inject({ url: dashboardUrl, headers: { ...headers, 'cache-control': 'no-cache' } })).headers['x-cache']).toBe('bypass')
    for (const title of ['Hit rate by query type', 'Hit rate (5m)']) {
      const result = await eventually(title, async () => {
        // Every query type has its series from the start (at 0): the one that was read is the one to check.
        const r = (await query(panelExpr(title))).filter((x) => title === 'Hit rate (5m)' || x.metric.query_type === 'stats')
        return r.length === 1 && r[0]!.value[1] === '0.5' ? r : undefined
      })
      expect(result[0]!.metric, title).toEqual(title === 'Hit rate (5m)' ? {} : { query_type: 'stats' })
    }
  })
})
