import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort, waitFor } from './net.js'
import { startRedisServer, type RedisServer } from './redis-server.js'

export interface SentinelGroupOptions {
  /** The name the sentinels monitor the primary under. */
  name?: string
  password?: string
  /** How long a silent primary takes to be considered down (down-after-milliseconds). */
  downAfterMs?: number
  /** The port the replica replicates from (a proxy in front of the primary, say); the primary's own by default. */
  replicateFrom?: (primaryPort: number) => number | Promise<number>
}

/**
 * A private primary/replica pair watched by a sentinel trio (quorum 2) on 127.0.0.1, for tests and benchmarks.
 * Sentinels are redis-server in sentinel mode (Debian's redis-server package has no separate redis-sentinel
 * binary, and needs none). `kill(port)` crashes a data node; `restart(port)` brings it back, empty, and the
 * sentinels make it a replica of the current primary.
 */
export async function startSentinelGroup (opts: SentinelGroupOptions = {}) {
  const name = opts.name ?? 'coldboard'
  const dir = mkdtempSync(join(tmpdir(), 'coldboard-sentinel-'))
  const auth = opts.password ? ['--requirepass', opts.password, '--masterauth', opts.password] : []
  const started: RedisServer[] = []
  try {
    const primary = await startRedisServer({ password: opts.password, args: ['--dir', dir, ...auth] })
    started.push(primary)
    const from = opts.replicateFrom ? await opts.replicateFrom(primary.port) : primary.port
    const replica = await startRedisServer({ password: opts.password, args: ['--dir', dir, ...auth, '--replicaof', '127.0.0.1', String(from)] })
    started.push(replica)
    const sentinels: RedisServer[] = []
    for (let i = 0; i < 3; i++) {
      const port = await freePort()
      const file = join(dir, `sentinel-${port}.conf`)
      writeFileSync(file, [
        `sentinel monitor ${name} 127.0.0.1 ${primary.port} 2`,
        `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 2000}`,
        `sentinel failover-timeout ${name} 10000`,
        `sentinel parallel-syncs ${name} 1`,
        ...(opts.password ? [`sentinel auth-pass ${name} ${opts.password}`] : []),
        ''
      ].join('\n'))
      const s = await startRedisServer({ port, configFile: file, args: ['--sentinel', '--dir', dir] })
      sentinels.push(s)
      started.push(s)
    }
    const data = [primary, replica]
    const admin = (port: number) => {
      const c = new Redis({ host: '127.0.0.1', port, password: opts.password, lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
      c.on('error', () => {})
      return c
    }
    async function on (port: number, ...args: Array<string | number>): Promise<unknown> {
      const c = sentinels.some((s) => s.port === port) ? new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false }) : admin(port)
      c.on('error', () => {})
      try {
        await c.connect()
        return await c.call(String(args[0]), ...args.slice(1))
      } catch {
        return null
      } finally {
        c.disconnect()
      }
    }
    const group = {
      name,
      primary,
      replica,
      sentinels,
      password: opts.password,
      /** `host:port,…` as REDIS_SENTINELS takes it. */
      sentinelsEnv: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
      on,
      /** The primary's port as the sentinels report it (null while they disagree or do not know). */
      async currentPrimary (): Promise<number | null> {
        const answers = await Promise.all(sentinels.map(async (s) => await on(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name) as [string, string] | null))
        const ports = new Set(answers.map((a) => a ? Number(a[1]) : null))
        return ports.size === 1 ? [...ports][0]! : null
      },
      /** Crashes a data node (SIGKILL). */
      kill: (port: number) => data.find((d) => d.port === port)!.stop('SIGKILL'),
      /**
       * Starts a killed data node again on its port (empty) as a replica of the current primary, as the sentinels
       * would make it (they do so only on their next 10 s round).
       */
      async restart (port: number): Promise<void> {
        await data.find((d) => d.port === port)!.start()
        const current = await group.currentPrimary()
        if (current !== null && current !== port) await on(port, 'REPLICAOF', '127.0.0.1', String(current))
      },
      /**
       * Waits until the sentinels agree on a primary that says it is one, and (with `replicas`) that primary has
       * that many replicas online.
       */
      async waitHealthy (o: { replicas?: number, timeoutMs?: number } = {}): Promise<number> {
        let port = 0
        await waitFor(async () => {
          const p = await group.currentPrimary()
          if (p === null) return false
          const info = String(await on(p, 'INFO', 'replication') ?? '')
          if (!info.includes('role:master')) return false
          const online = info.split('\n').filter((l) => /^slave\d+:.*state=online/.test(l)).length
          port = p
          return online >= (o.replicas ?? 0)
        }, o.timeoutMs ?? 30_000, 'a healthy sentinel group')
        return port
      },
      async stop (): Promise<void> {
        await Promise.all(started.map((s) => s.stop()))
        rmSync(dir, { recursive: true, force: true })
      }
    }
    // The sentinels discover the replica and each other through the primary; a failover needs both.
    await waitFor(async () => {
      const seen = await Promise.all(sentinels.map(async (s) => {
        const replicas = await on(s.port, 'SENTINEL', 'REPLICAS', name) as unknown[] | null
        const others = await on(s.port, 'SENTINEL', 'SENTINELS', name) as unknown[] | null
        return (replicas?.length ?? 0) >= 1 && (others?.length ?? 0) >= 2
      }))
      return seen.every(Boolean)
    }, 30_000, 'sentinels that know the replica and each other')
    await group.waitHealthy({ replicas: 1 })
    return group
  } catch (err) {
    await Promise.all(started.map((s) => s.stop()))
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}
export type SentinelGroup = Awaited<ReturnType<typeof startSentinelGroup>>
