import { Redis } from 'ioredis'
import { startRedisServer } from '../../src/lib/redis-server.js'
import { waitFor } from '../../src/lib/net.js'

export interface BenchRedis { url: string, port: number, client: Redis, stop (): Promise<void> }

/**
 * A private, throw-away redis-server (src/lib/redis-server.ts) with a plain client. Benchmarks fill it with
 * millions of keys and reset its statistics, so it must never be the shared 6379 one.
 */
export async function startBenchRedis (): Promise<BenchRedis> {
  const server = await startRedisServer()
  const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  await waitFor(async () => {
    try { await client.connect(); return true } catch { return false }
  }, 10_000, `redis-server on ${server.port}`)
  return {
    url: server.url,
    port: server.port,
    client,
    async stop () {
      client.disconnect()
      await server.stop('SIGTERM')
    }
  }
}

/** INFO <section> as a flat record. */
export async function info (client: Redis, section: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const line of (await client.info(section)).split('\r\n')) {
    const i = line.indexOf(':')
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}

/** INFO commandstats as { command: { calls, usec } }. */
export async function commandStats (client: Redis): Promise<Record<string, { calls: number, usec: number }>> {
  const out: Record<string, { calls: number, usec: number }> = {}
  for (const [k, v] of Object.entries(await info(client, 'commandstats'))) {
    const calls = /calls=(\d+)/.exec(v)
    const usec = /usec=(\d+)/.exec(v)
    out[k.replace(/^cmdstat_/, '')] = { calls: Number(calls?.[1] ?? 0), usec: Number(usec?.[1] ?? 0) }
  }
  return out
}
