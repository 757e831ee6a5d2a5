import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { Redis } from 'ioredis'

/** PING within a second: is a Redis answering at `url`? */
export async function redisAnswers (url: string): Promise<boolean> {
  const c = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
  c.on('error', () => {})
  try {
    await c.connect()
    return (await c.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    c.disconnect()
  }
}

async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

export type DemoRedis =
  | { kind: 'configured', url: string }
  | { kind: 'private', url: string, stop: () => void }
  | { kind: 'none', reason: string }

/**
 * The demo's Redis: the configured one when it answers; else a private redis-server (nothing saved to
 * disk, noeviction) when one is installed; else none, and the demo runs without the cache.
 */
export async function resolveDemoRedis (configuredUrl: string | null): Promise<DemoRedis> {
  if (configuredUrl === null) return { kind: 'none', reason: 'REDIS_DISABLED is set' }
  if (await redisAnswers(configuredUrl)) return { kind: 'configured', url: configuredUrl }
  const port = await freePort()
  let proc: ChildProcess
  try {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' })
    await new Promise<void>((resolve, reject) => {
      proc.once('error', reject)
      proc.once('spawn', () => resolve())
    })
  } catch {
    return { kind: 'none', reason: `no Redis answers at ${configuredUrl} and redis-server is not installed` }
  }
  const url = `redis://127.0.0.1:${port}`
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    if (await redisAnswers(url)) {
      const stop = () => { if (proc.exitCode === null) proc.kill('SIGTERM') }
      process.once('exit', stop)
      return { kind: 'private', url, stop }
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  proc.kill('SIGKILL')
  return { kind: 'none', reason: `no Redis answers at ${configuredUrl} and a private redis-server did not start` }
}
