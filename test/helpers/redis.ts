import net from 'node:net'

/** The shared Redis of the machine (each test app has a REDIS_KEY_PREFIX of its own: test/helpers/fixture.ts). */
export const sharedRedisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

export { freePort, waitFor } from '../../src/lib/net.js'
export { startRedisServer as startPrivateRedis, type RedisServer as PrivateRedis } from '../../src/lib/redis-server.js'
export { startRedisCluster, type RedisClusterHandle } from '../../src/lib/redis-cluster.js'
export { startSentinelGroup, type SentinelGroup } from '../../src/lib/redis-sentinel.js'

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
