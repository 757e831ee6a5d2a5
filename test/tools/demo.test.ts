import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const root = path.resolve(import.meta.dirname, '../..')

async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

async function until<T> (what: string, deadlineMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + deadlineMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const v = await probe()
      if (v !== undefined) return v
    } catch (err) {
      lastError = err
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`)
}

interface DemoRun {
  child: ChildProcess
  port: number
  stdout: () => string
  stderr: () => string
  exited: Promise<number | null>
}

function startDemo (dataDir: string, port: number, extraEnv: Record<string, string> = {}): DemoRun {
  const env: Record<string, string | undefined> = { ...process.env, DATA_DIR: dataDir, QUEUE_PREFIX: `cbdemo${randomBytes(4).toString('hex')}`, NODE_ENV: 'test', ...extraEnv }
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
    const res = await fetch(`${base}/health`)
    return res.status === 200 ? true : undefined
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
  afterAll(() => {
    for (const r of runs) if (r.child.exitCode === null) r.child.kill('SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  })

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

    expect(await stop(run)).toBe(0)
  }, 120_000)

  it('reuses the demo organization on the next run', async () => {
    const first = /^organization: (\S+)$/m.exec(runs[0]?.stdout() ?? '')?.[1]
    expect(first).toBeDefined()
    const run = startDemo(dataDir, await freePort())
    runs.push(run)
    const { orgId } = await ready(run)
    expect(orgId).toBe(first)
    expect(run.stderr()).toContain('reusing the demo organization')
    expect(await stop(run)).toBe(0)
  }, 120_000)

  it('starts a private redis-server when no Redis answers, uses it as its cache, and stops it on exit', async () => {
    const dead = await freePort()
    const run = startDemo(dataDir, await freePort(), { REDIS_URL: `redis://127.0.0.1:${dead}` })
    runs.push(run)
    const { base, orgId, viewer } = await ready(run)
    expect(run.stderr()).toMatch(/started a private redis-server at redis:\/\/127\.0\.0\.1:\d+/)
    expect(run.stdout()).toMatch(/^dashboard: http:\/\/localhost:\d+\/#token=\S+&org=/m)
    const health = await (await fetch(`${base}/health`)).json() as { checks: { redis: { ok: boolean } } }
    expect(health.checks.redis.ok).toBe(true)
    const headers = { authorization: `Bearer ${viewer}` }
    await fetch(`${base}/api/orgs/${orgId}/dashboard/units/status`, { headers })
    expect((await fetch(`${base}/api/orgs/${orgId}/dashboard/units/status`, { headers })).headers.get('x-cache')).toBe('hit')
    expect(await stop(run)).toBe(0)
  }, 120_000)
})
