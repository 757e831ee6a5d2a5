import net from 'node:net'

/** The shared Redis of the machine (each test app has a REDIS_KEY_PREFIX of its own: test/helpers/fixture.ts). */
export const sharedRedisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

export { freePort, waitFor } from '../../src/lib/net.js'
export { startRedisServer as startPrivateRedis, type RedisServer as PrivateRedis } from '../../src/lib/redis-server.js'

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
