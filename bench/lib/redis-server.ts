import { spawn, type ChildProcess } from 'node:child_process'
import { Redis } from 'ioredis'
import { freePort, waitFor } from '../../test/helpers/redis.js'

export interface BenchRedis { url: string, port: number, client: Redis, stop (): Promise<void> }

const running = new Set<ChildProcess>()
// A crashed benchmark must not leave a redis-server behind.
process.once('exit', () => { for (const p of running) p.kill('SIGKILL') })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { for (const p of running) p.kill('SIGKILL'); process.exit(130) })
}

/**
 * A private, throw-away redis-server on a free port, configured like production for BullMQ (noeviction,
 * no persistence). Benchmarks fill it with millions of keys and reset its statistics, so it must never be
 * the shared 6379 one.
 */
export async function startBenchRedis (): Promise<BenchRedis> {
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' })
  running.add(proc)
  const exited = new Promise<void>((resolve) => proc.once('exit', () => { running.delete(proc); resolve() }))
  const url = `redis://127.0.0.1:${port}`
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  await waitFor(async () => {
    try { await client.connect(); return true } catch { return false }
  }, 10_000, `redis-server on ${port}`)
  return {
    url,
    port,
    client,
    async stop () {
      client.disconnect()
      if (proc.exitCode === null) proc.kill('SIGTERM')
      await exited
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
