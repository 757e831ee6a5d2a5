import { spawn, type ChildProcess } from 'node:child_process'
import { Redis } from 'ioredis'
import { freePort, waitFor } from './net.js'

/** One short-lived connection to `url` for `fn`; null when it cannot connect or `fn` fails (within about a second). */
async function probe<T> (url: string, password: string | undefined, fn: (c: Redis) => Promise<T>): Promise<T | null> {
  const c = new Redis(url, { ...(password ? { password } : {}), lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
  c.on('error', () => {})
  try {
    await c.connect()
    return await fn(c)
  } catch {
    return null
  } finally {
    c.disconnect()
  }
}

/** PING within a second: is a Redis answering at `url`? */
export async function redisAnswers (url: string, password?: string): Promise<boolean> {
  return (await probe(url, password, (c) => c.ping())) === 'PONG'
}

/** The process id of the Redis answering at `url` (INFO server), or null. */
async function redisPid (url: string, password?: string): Promise<number | null> {
  const info = await probe(url, password, (c) => c.info('server'))
  const m = info === null ? null : /^process_id:(\d+)/m.exec(info)
  return m ? Number(m[1]) : null
}

const running = new Set<ChildProcess>()
let exitHookInstalled = false
function killAllOnExit (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // A crashed demo, benchmark or test must not leave a redis-server behind.
  process.once('exit', () => { for (const p of running) p.kill('SIGKILL') })
}

export interface RedisServerOptions {
  port?: number
  /** Extra redis-server arguments (cluster mode, replicaof, a password, `--sentinel`…). */
  args?: string[]
  /** A configuration file, read before the arguments (a sentinel needs one it may rewrite). */
  configFile?: string
  /** The password, when `args` set `--requirepass` (readiness is a PING). */
  password?: string
  /** How long to wait for the first PONG. */
  startTimeoutMs?: number
}

/**
 * A private, throw-away redis-server on 127.0.0.1 (a free port unless given), configured like production for
 * BullMQ: noeviction, nothing saved to disk. Used by the demo when no Redis answers, by the benchmarks (which
 * fill and reset it) and by the fault tests (which stop, restart and flush it). `stop()` kills it (SIGKILL: a
 * crash, as a fault test wants), `start()` starts it again, empty, on the same port.
 */
export async function startRedisServer (opts: RedisServerOptions = {}) {
  const port = opts.port ?? await freePort()
  const url = `redis://127.0.0.1:${port}`
  let proc: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()
  killAllOnExit()

  async function start (): Promise<void> {
    const child = spawn('redis-server', [
      ...(opts.configFile ? [opts.configFile] : []),
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction',
      ...(opts.args ?? [])
    ], { stdio: 'ignore' })
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject)
      child.once('spawn', () => resolve())
    })
    proc = child
    running.add(child)
    exited = new Promise((resolve) => child.once('exit', () => { running.delete(child); resolve() }))
    // Ready once the server answering on the port is this one: after a restart, the port may have been taken in the
    // meantime by another process's redis-server (this one then fails to bind and exits), which must not pass for it.
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${child.exitCode} (is the port taken?)`)
      return await redisPid(url, opts.password) === child.pid
    }, opts.startTimeoutMs ?? 10_000, `redis-server on ${port}`)
  }

  async function stop (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = proc
    if (!child) return
    proc = null
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    await exited
  }

  await start()
  return {
    url,
    port,
    start,
    stop,
    /** The process id while it runs (to pause it with SIGSTOP, say). */
    pid: () => proc?.pid ?? null,
    ping: () => redisAnswers(url, opts.password)
  }
}
export type RedisServer = Awaited<ReturnType<typeof startRedisServer>>
