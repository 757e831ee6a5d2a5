import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { newPrefix } from '../helpers/fixture.js'
import { freePort, waitFor } from '../helpers/redis.js'

const root = path.resolve(import.meta.dirname, '../..')

/** Polls `probe` (waitFor) until it returns a value; a probe that throws fails at once. */
async function until<T> (what: string, deadlineMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  let value: T | undefined
  await waitFor(async () => (value = await probe()) !== undefined, deadlineMs, what)
  return value!
}

interface DemoRun {
  child: ChildProcess
  port: number
  stdout: () => string
  stderr: () => string
  exited: Promise<number | null>
}

function startDemo (dataDir: string, port: number, extraEnv: Record<string, string> = {}): DemoRun {
  // A key prefix of its own: the demo's entries, channels and queue meet no other test's on the shared Redis.
  const env: Record<string, string | undefined> = { ...process.env, DATA_DIR: dataDir, REDIS_KEY_PREFIX: newPrefix(), NODE_ENV: 'test', ...extraEnv }
  delete env.DATABASE_URL
  delete env.JWT_SECRET
  const child = spawn(process.execPath, ['bin/coldboard.js', 'demo', '--port', String(port), '--interval', '1'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { child, port, stdout: () => out, stderr: () => err, exited }
}

/** Waits for /health and the printed credentials; returns them. */
async function ready (run: DemoRun) {
  const base = `http://127.0.0.1:${run.port}`
  await until('/health to answer 200', 60_000, async () => {
    if (run.child.exitCode !== null) throw new Error(`demo exited ${run.child.exitCode}: ${run.stderr()}`)
    // Connection refused until the server listens.
    const res = await fetch(`${base}/health`).catch(() => null)
    return res?.status === 200 ? true : undefined
  })
  const field = (name: string) => new RegExp(`^${name}: (\\S+)$`, 'm').exec(run.stdout())?.[1]
  await until('the printed tokens', 10_000, async () => field('manager token'))
  return { base, orgId: field('organization')!, viewer: field('viewer token')!, manager: field('manager token')! }
}

async function stop (run: DemoRun): Promise<number | null> {
  run.child.kill('SIGTERM')
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 15_000).unref())
  const code = await Promise.race([run.exited, timeout])
  if (code === 'timeout') {
    run.child.kill('SIGKILL')
    throw new Error('demo did not exit within 15 s of SIGTERM')
  }
  return code
}

describe('coldboard demo (child process)', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'cb-demo-'))
  const runs: DemoRun[] = []
  afterAll(async () => {
    // A demo left running by a failed test stops gracefully (SIGTERM), so it stops its private redis-server too;
    // SIGKILL only if it hangs (stop).
    for (const r of runs) if (r.child.exitCode === null && r.child.signalCode === null) await stop(r).catch(() => {})
    rmSync(dataDir, { recursive: true, force: true })
  }, 60_000)

  it('serves a seeded demo organization, feeds it live readings, prints working tokens and stops on SIGTERM', async () => {
    const startedAt = Date.now()
    const run = startDemo(dataDir, await freePort())
    runs.push(run)
    const { base, orgId, viewer, manager } = await ready(run)
    expect(run.stdout()).toContain(`${base.replace('127.0.0.1', 'localhost')}/api/orgs/${orgId}/dashboard`)
    expect(run.stdout()).toMatch(/curl .*Authorization: Bearer /)

    const dashboard = await fetch(`${base}/api/orgs/${orgId}/dashboard`, { headers: { authorization: `Bearer ${viewer}` } })
    expect(dashboard.status).toBe(200)
    const stats = await dashboard.json() as { unitCounts: { total: number, offline: number }, siteCount: number }
    expect(stats.unitCounts.total).toBe(12)
    expect(stats.unitCounts.offline).toBeGreaterThanOrEqual(1)
    expect(stats.siteCount).toBe(2)
    expect((await fetch(`${base}/api/orgs/${orgId}/dashboard`)).status).toBe(401)

    // The simulator posts through the real ingestion endpoint: units report readings newer than the start.
    const fresh = await until('a simulated reading to arrive', 30_000, async () => {
      const res = await fetch(`${base}/api/orgs/${orgId}/units`, { headers: { authorization: `Bearer ${viewer}` } })
      const list = await res.json() as Array<{ lastReadingAt: string | null }>
      const n = list.filter((u) => u.lastReadingAt && Date.parse(u.lastReadingAt) >= startedAt).length
      return n >= 10 ? n : undefined
    })
    expect(fresh).toBeGreaterThanOrEqual(10)

    // The viewer may read but not write; the manager may write.
    const site = (token: string) => fetch(`${base}/api/orgs/${orgId}/sites`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Test Kitchen' })
    })
    expect((await site(viewer)).status).toBe(403)
    expect((await site(manager)).status).toBe(201)

    expect(await stop(run), run.stderr()).toBe(0)
  }, 120_000)

  it('reuses the demo organization on the next run', async () => {
    const first = /^organization: (\S+)$/m.exec(runs[0]?.stdout() ?? '')?.[1]
    expect(first).toBeDefined()
    const run = startDemo(dataDir, await freePort())
    runs.push(run)
    const { orgId } = await ready(run)
    expect(orgId).toBe(first)
    expect(run.stderr()).toContain('reusing the demo organization')
    expect(await stop(run), run.stderr()).toBe(0)
  }, 120_000)

  it('starts a private redis-server when no Redis answers, uses it as its cache, and stops it on exit', async () => {
    const dead = await freePort()
    const run = startDemo(dataDir, await freePort(), { REDIS_URL: `redis://127.0.0.1:${dead}` })
    runs.push(run)
    const { base, orgId, viewer } = await ready(run)
    expect(run.stderr()).toMatch(/started a private redis-server at redis:\/\/127\.0\.0\.1:\d+/)
    expect(run.stdout()).toMatch(/^dashboard: http:\/\/localhost:\d+\/#token=\S+&org=/m)
    // The cache connection comes up on its own after the server listens (/health answers either way).
    await until('/health to report the private Redis', 10_000, async () => {
      const health = await (await fetch(`${base}/health`)).json() as { checks: { redis: { ok: boolean } } }
      return health.checks.redis.ok ? true : undefined
    })
    const headers = { authorization: `Bearer ${viewer}` }
    await fetch(`${base}/api/orgs/${orgId}/dashboard/units/status`, { headers })
    expect((await fetch(`${base}/api/orgs/${orgId}/dashboard/units/status`, { headers })).headers.get('x-cache')).toBe('hit')
    expect(await stop(run), run.stderr()).toBe(0)
  }, 120_000)
})
