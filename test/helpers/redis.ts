import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { Redis } from 'ioredis'

/** The shared Redis of the machine (tests isolate by random organization ids and BullMQ prefixes). */
export const sharedRedisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

export async function waitFor (check: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** A private redis-server on its own port, for fault tests that stop, restart or flush it. */
export async function startPrivateRedis (port?: number) {
  const p = port ?? await freePort()
  let proc: ChildProcess | null = null
  const url = `redis://127.0.0.1:${p}`
  async function ping (): Promise<boolean> {
    const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
    c.on('error', () => {})
    try { await c.connect(); return (await c.ping()) === 'PONG' } catch { return false } finally { c.disconnect() }
  }
  async function start (): Promise<void> {
    proc = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' })
    await waitFor(ping, 10_000, `redis-server on ${p}`)
  }
  async function stop (): Promise<void> {
    if (!proc) return
    const exited = new Promise((resolve) => proc!.once('exit', resolve))
    proc.kill('SIGKILL')
    await exited
    proc = null
  }
  await start()
  return { url, port: p, start, stop, ping }
}
export type PrivateRedis = Awaited<ReturnType<typeof startPrivateRedis>>

/**
 * A TCP proxy in front of a Redis that keeps its data: `cut()` drops every connection and refuses new
 * ones, `restore()` lets them through again, `delayMs` slows every chunk in both directions.
 */
export async function startTcpProxy (targetPort: number) {
  const sockets = new Set<net.Socket>()
  let refusing = false
  let delayMs = 0
  const relay = (from: net.Socket, to: net.Socket) => {
    from.on('data', (chunk) => {
      if (delayMs > 0) setTimeout(() => { if (!to.destroyed) to.write(chunk) }, delayMs)
      else if (!to.destroyed) to.write(chunk)
    })
  }
  const server = net.createServer((client) => {
    if (refusing) { client.destroy(); return }
    const upstream = net.connect(targetPort, '127.0.0.1')
    sockets.add(client); sockets.add(upstream)
    relay(client, upstream); relay(upstream, client)
    const drop = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream) }
    client.on('close', drop); upstream.on('close', drop)
    client.on('error', drop); upstream.on('error', drop)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    cut () { refusing = true; for (const s of sockets) s.destroy(); sockets.clear() },
    restore () { refusing = false },
    setDelay (ms: number) { delayMs = ms },
    async close () {
      refusing = true
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
