import net from 'node:net'
import { freePort, portIsFree } from '../../src/lib/net.js'
import { startRedisServer, type RedisServerOptions } from '../../src/lib/redis-server.js'

/** The shared Redis of the machine (each test app has a REDIS_KEY_PREFIX of its own: test/helpers/fixture.ts). */
export const sharedRedisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

export { freePort, waitFor } from '../../src/lib/net.js'
export type { RedisServer as PrivateRedis } from '../../src/lib/redis-server.js'

/** Ports of this test process's private servers: below the OS's ephemeral range, a block of 1,000 per vitest worker. */
const BLOCK = 1000
const FIRST = 20_000
let nextInBlock = 0

/**
 * A port for a server that a test stops and starts again on the same port. An OS-picked port (freePort) is in the
 * ephemeral range, so while the server is down another file's server, or any outgoing connection of the suite, can be
 * handed it, and the restart then cannot bind. Below that range, in a block of this worker's own (VITEST_POOL_ID),
 * nothing else in the suite is given it.
 */
export async function restartablePort (): Promise<number> {
  const base = FIRST + (Number(process.env.VITEST_POOL_ID ?? 0) % 10) * BLOCK
  for (let tries = 0; tries < BLOCK; tries++) {
    const port = base + (nextInBlock++ % BLOCK)
    if (await portIsFree(port)) return port
  }
  return freePort()
}

/** A private redis-server (src/lib/redis-server.ts) on a `restartablePort` unless given one. */
export async function startPrivateRedis (opts: RedisServerOptions = {}) {
  return startRedisServer({ ...opts, port: opts.port ?? await restartablePort() })
}
export { startRedisCluster, type RedisClusterHandle } from '../../src/lib/redis-cluster.js'
export { startSentinelGroup, type SentinelGroup } from '../../src/lib/redis-sentinel.js'

/** MONITOR's quoted arguments (`"get" "a\\"b"`), unescaped as Redis escaped them (sdscatrepr). */
function monitorArgs (text: string): string[] {
  const named: Record<string, string> = { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' }
  return [...text.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(x[0-9a-f]{2}|.)/g, (_, c: string) =>
    c.length === 3 ? String.fromCharCode(parseInt(c.slice(1), 16)) : named[c] ?? c))
}

/**
 * Every command the Redis at `url` runs from now on, as MONITOR reports it, over a plain socket: under a burst of
 * traffic, ioredis's monitor mode can take the first lines for replies ("Command queue state error").
 */
export async function monitorCommands (url: string, onCommand: (args: string[]) => void): Promise<{ stop: () => void }> {
  const u = new URL(url)
  const socket = net.connect(Number(u.port || 6379), u.hostname)
  socket.setEncoding('latin1')
  let buffered = ''
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.on('data', (chunk: string) => {
      buffered += chunk
      for (let end = buffered.indexOf('\r\n'); end >= 0; end = buffered.indexOf('\r\n')) {
        const line = buffered.slice(0, end)
        buffered = buffered.slice(end + 2)
        if (line === '+OK') resolve()
        else if (line.startsWith('-')) reject(new Error(line.slice(1)))
        else {
          const command = /^\+\d+\.\d+ \[[^\]]*\] (.*)$/.exec(line)
          if (command) onCommand(monitorArgs(command[1]!))
        }
      }
    })
    socket.write('MONITOR\r\n')
  })
  return { stop: () => socket.destroy() }
}

/**
 * A TCP proxy in front of a Redis that keeps its data: `cut()` drops every connection and refuses new
 * ones, `restore()` lets them through again, `delayMs` slows every chunk in both directions.
 * `setReplicationDelay(ms)` slows only the connections a replica opened (those that sent REPLCONF): the
 * replication stream lags while clients going through the same proxy do not. Delayed chunks keep their order.
 */
export async function startTcpProxy (targetPort: number) {
  const sockets = new Set<net.Socket>()
  let refusing = false
  let delayMs = 0
  let replicationDelayMs = 0
  let replyDelayMs = 0
  const relay = (from: net.Socket, to: net.Socket, link: { replication: boolean }, upstream: boolean) => {
    let lastDue = 0
    from.on('data', (chunk) => {
      if (upstream && !link.replication && chunk.includes('REPLCONF')) link.replication = true
      const delay = Math.max(delayMs, link.replication ? replicationDelayMs : 0, upstream ? 0 : replyDelayMs)
      const now = Date.now()
      if (delay === 0 && lastDue <= now) {
        if (!to.destroyed) to.write(chunk)
        return
      }
      const due = Math.max(now + delay, lastDue)
      lastDue = due
      setTimeout(() => { if (!to.destroyed) to.write(chunk) }, due - now)
    })
  }
  const server = net.createServer((client) => {
    if (refusing) { client.destroy(); return }
    const upstream = net.connect(targetPort, '127.0.0.1')
    sockets.add(client); sockets.add(upstream)
    const link = { replication: false }
    relay(client, upstream, link, true); relay(upstream, client, link, false)
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
    setReplicationDelay (ms: number) { replicationDelayMs = ms },
    /** Holds Redis' replies (not the commands): a command runs at once, its answer arrives `ms` later. */
    setReplyDelay (ms: number) { replyDelayMs = ms },
    async close () {
      refusing = true
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
