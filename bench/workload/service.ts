import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { envSchema } from '../../src/config.js'
import { freePort, waitFor } from '../../src/lib/net.js'

const bin = fileURLToPath(new URL('../../bin/coldboard.js', import.meta.url))
const running = new Set<ChildProcess>()
// A crashed simulator or benchmark must not leave a server behind.
process.once('exit', () => { for (const p of running) p.kill('SIGKILL') })

export interface ServiceOptions {
  databaseUrl: string
  /** null: REDIS_DISABLED=true (no cache, inline ingestion, local Socket.io). */
  redisUrl: string | null
  jwtSecret: string
  instances: number
  /**
   * The queue worker in a process of its own (`coldboard worker`), the API instances with `serve --no-worker`:
   * deploy/'s topology. Only with Redis (without it evaluation runs inline in the API, and there is no queue).
   */
  workerProcess?: boolean
  dataDir: string
  /** Extra environment, e.g. CACHE_TTL_SECONDS. */
  env?: Record<string, string>
  log: (line: string) => void
}

/**
 * Starts `instances` × `node bin/coldboard.js serve` (each with its queue worker and sweeper, as a
 * default deployment runs; with `workerProcess`, `serve --no-worker` and one `coldboard worker`, as deploy/ runs),
 * on free ports of 127.0.0.1, and waits until each answers /health/ready.
 */
export async function startService (opts: ServiceOptions): Promise<{ urls: string[], workerUrl: string | null, stop: () => Promise<void> }> {
  // The parent's coldboard variables must not leak into the children: they get exactly these.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !(k in envSchema.shape)))
  const env: Record<string, string | undefined> = {
    ...base,
    NODE_ENV: 'production',
    DATABASE_URL: opts.databaseUrl,
    DATA_DIR: opts.dataDir,
    JWT_SECRET: opts.jwtSecret,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    // Ingestion is limited per API key; the limit protects production, it is not what is measured.
    RATE_LIMIT_MAX: '10000000',
    ...(opts.redisUrl ? { REDIS_URL: opts.redisUrl } : { REDIS_DISABLED: 'true' }),
    ...opts.env
  }
  const children: Array<{ proc: ChildProcess, url: string, exited: Promise<number | null>, stderr: string[], api: boolean }> = []
  const separateWorker = opts.workerProcess === true && opts.redisUrl !== null
  const stop = async () => {
    await Promise.all(children.map(async (c) => {
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM')
      const killer = setTimeout(() => c.proc.kill('SIGKILL'), 15_000)
      await c.exited
      clearTimeout(killer)
    }))
  }
  try {
    const roles = [...Array.from({ length: opts.instances }, () => 'api' as const), ...(separateWorker ? ['worker' as const] : [])]
    for (const role of roles) {
      const port = await freePort()
      const args = role === 'worker' ? ['worker', '--port', String(port)] : ['serve', '--port', String(port), ...(separateWorker ? ['--no-worker'] : [])]
      const proc = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] })
      running.add(proc)
      const stderr: string[] = []
      proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        for (const line of chunk.split('\n').filter(Boolean)) {
          stderr.push(line)
          if (stderr.length > 20) stderr.shift()
        }
      })
      const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => { running.delete(proc); resolve(code) }))
      children.push({ proc, url: `http://127.0.0.1:${port}`, exited, stderr, api: role === 'api' })
    }
    for (const c of children) {
      await waitFor(async () => {
        if (c.proc.exitCode !== null) throw new Error(`coldboard serve exited with ${c.proc.exitCode}: ${c.stderr.slice(-5).join(' | ')}`)
        try {
          const res = await fetch(`${c.url}/health/ready`)
          await res.arrayBuffer()
          return res.status === 200
        } catch { return false }
      }, 90_000, `coldboard at ${c.url}`)
    }
  } catch (err) {
    await stop()
    throw err
  }
  const apis = children.filter((c) => c.api)
  const workerUrl = children.find((c) => !c.api)?.url ?? null
  opts.log(`coldboard: ${apis.length} instance(s) at ${apis.map((c) => c.url).join(', ')}${workerUrl ? ` (--no-worker) and a worker at ${workerUrl}` : ''} (${opts.redisUrl ? `Redis ${opts.redisUrl}` : 'REDIS_DISABLED=true'})`)
  return { urls: apis.map((c) => c.url), workerUrl, stop }
}
