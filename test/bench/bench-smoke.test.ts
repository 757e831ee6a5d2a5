import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { findPostgresBinaries } from '../../bench/lib/postgres-server.js'
import { envSchema } from '../../src/config.js'
import { adminUrl } from '../helpers/db.js'

const root = path.resolve(import.meta.dirname, '../..')
const out = mkdtempSync(path.join(os.tmpdir(), 'coldboard-bench-smoke-'))
afterAll(() => rmSync(out, { recursive: true, force: true }))

function run (args: string[]): Promise<{ code: number | null, stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(root, 'bin/coldboard.js'), ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
    child.on('exit', (code) => resolve({ code, stderr }))
  })
}

const percentiles = { n: expect.any(Number), mean: expect.any(Number), p50: expect.any(Number), p95: expect.any(Number), p99: expect.any(Number), max: expect.any(Number) }
const byPanel = Object.fromEntries(['overview', 'unitCounts', 'alertCounts', 'devicesOnline', 'unitTrend', 'all'].map((p) => [p, percentiles]))
const numberOrNull = (v: unknown) => v === null || typeof v === 'number'

describe('coldboard bench --smoke', () => {
  it('runs W1 on and off and the micro-benchmarks, and writes a report with every figure and bar of docs/PERFORMANCE.md', async () => {
    // As `coldboard bench` runs by default: on a private PostgreSQL with pg_stat_statements, which counts the dashboard's
    // statements exactly. A machine without the server binaries runs it on the tests' server (pg_stat_database).
    const privatePg = 'binDir' in findPostgresBinaries()
    const res = await run(['bench', '--smoke', '--out', out, ...(privatePg ? [] : ['--database-url', adminUrl])])
    expect(res.code, res.stderr).toBe(0)

    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'))
    expect(report).toMatchObject({
      schema: 'coldboard-bench/1',
      smoke: true,
      machine: { date: expect.any(String), nproc: expect.any(Number), node: expect.any(String), postgres: expect.stringMatching(/^PostgreSQL /), redis: expect.any(String) },
      hitRate: expect.any(Number),
      dbQueryReduction: expect.any(Number),
      dbStats: { source: expect.stringMatching(/^pg_stat_(statements|database)$/), note: expect.any(String) },
      latencyMs: { cached: byPanel, uncached: byPanel },
      invalidationMs: { atUnrelatedKeys: { keys: expect.any(Number), p50: expect.any(Number), p99: expect.any(Number) } },
      cacheBytesPerOrg: expect.any(Number),
      cacheMBPer1000Orgs: expect.any(Number),
      hitThroughputRatio: expect.any(Number),
      peers: {
        bentocache: { reqPerSec: expect.any(Number), ratioToColdboard: expect.any(Number) },
        cacheManager: { reqPerSec: expect.any(Number), ratioToColdboard: expect.any(Number) }
      }
    })
    if (privatePg) {
      expect(res.stderr).toMatch(/private PostgreSQL .* pg_stat_statements preloaded/)
      expect(report.dbStats.source).toBe('pg_stat_statements')
      // Every dashboard load of the cache-off run is a tagged statement PostgreSQL counted; none was evicted uncounted.
      expect(report.dbStats.readsPerSecond.uncached).toBeGreaterThan(0)
      expect(report.runs.uncached.database.measured.evictedStatements).toBe(0)
    }
    expect(numberOrNull(report.invalidationMs.p50)).toBe(true)
    expect(numberOrNull(report.invalidationMs.p99)).toBe(true)
    // Both runs really served dashboards to the viewers: through the cache, and without it.
    expect(report.latencyMs.cached.all.n).toBeGreaterThan(0)
    expect(report.latencyMs.uncached.all.n).toBeGreaterThan(0)
    expect(report.runs.cached.service.hits).toBeGreaterThan(0)
    expect(report.runs.uncached.service.hits).toBe(0)
    // The refresh's before: the cache on without it, its emit delay beside the refresh's own.
    expect(report.runs.refreshOff.service.hits).toBeGreaterThan(0)
    expect(Object.values(report.runs.refreshOff.service.refreshes as Record<string, number>).filter((n) => n > 0)).toEqual([])
    expect(report.refreshBeforeAfter).toMatchObject({ emitDelayMs: { before: { count: expect.any(Number) }, after: { count: expect.any(Number) } } })
    expect(report.workload.cacheRefreshWaitMs).toBe(envSchema.shape.CACHE_REFRESH_WAIT_MS.parse(undefined))
    expect(report.cacheMemory.keys).toBeGreaterThan(0)
    // Every bar is reported as met or missed.
    expect(report.bars.map((b: { id: string }) => b.id)).toEqual(['hitRate', 'dbQueryReduction', 'cachedP99', 'invalidationP99', 'cacheMBPer1000Orgs', 'hitThroughputRatio', 'peers', 'emitP99'])
    for (const b of report.bars) expect(typeof b.met).toBe('boolean')

    const md = readFileSync(path.join(out, 'report.md'), 'utf8')
    expect(md).toMatch(/^# Performance/)
    expect(md).toContain('## The bars')
    expect(md).toMatch(/^\| bar \| target \| measured \|/m)
    expect(md).not.toMatch(/\bissue \d/i)
    expect(md).toContain('](latency-percentiles.svg)')
    expect(md).toContain('## Refresh on invalidation: before and after')
    expect(readFileSync(path.join(out, 'latency-percentiles.svg'), 'utf8')).toMatch(/^<svg /)
    // The smoke run leaves its database behind only when asked to.
    expect(res.stderr).not.toContain('could not drop')
  }, 180_000)

  it("simulate --worker-process: deploy/'s topology, the API with --no-worker and a worker process whose metrics are read too", async () => {
    const child = spawn(process.execPath, [path.join(root, 'bin/coldboard.js'), 'simulate', '--worker-process', '--json', '--database-url', adminUrl,
      '--orgs', '1', '--units', '4', '--history-hours', '1', '--viewers', '1', '--poll-seconds', '1', '--duration', '3', '--writers-only', '1',
      '--reading-interval-seconds', '1'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c })
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
    expect(code, stderr).toBe(0)
    expect(stderr).toMatch(/1 instance\(s\) at http:\/\/127\.0\.0\.1:\d+ \(--no-worker\) and a worker at http:\/\/127\.0\.0\.1:\d+/)
    const result = JSON.parse(stdout)
    expect(result.writers.accepted).toBeGreaterThan(0)
    expect(result.writers.failed).toBe(0)
    expect(result.service.hits + result.service.misses).toBeGreaterThan(0)
  }, 180_000)

  it('refuses an unknown flag with a one-line reason', async () => {
    const res = await run(['bench', '--smoke', '--frobnicate'])
    expect(res.code).toBe(1)
    expect(res.stderr.trim().split('\n')).toHaveLength(1)
    expect(res.stderr).toMatch(/^coldboard: bench: .*frobnicate/)
  })
})
