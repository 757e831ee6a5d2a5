import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { freePort, waitFor } from './net.js'
import { startRedisServer, type RedisServer } from './redis-server.js'

const run = promisify(execFile)

export interface ClusterNode {
  port: number
  server: RedisServer
}

export interface RedisClusterOptions {
  primaries?: number
  replicasPerPrimary?: number
  /** cluster-node-timeout: how long a silent node takes to be marked failed (and its replica promoted). */
  nodeTimeoutMs?: number
  password?: string
  /** Ports to use (one per node); free ports otherwise. */
  ports?: number[]
  /**
   * The port a node announces to the others and to clients (a proxy in front of it, say); its own by default.
   * Replicas replicate through it, clients follow it; the cluster bus stays direct.
   */
  announcePort?: (port: number) => number
}

/**
 * A private Redis Cluster on 127.0.0.1 for tests and benchmarks: `primaries` × (1 + `replicasPerPrimary`)
 * redis-server processes in cluster mode (their nodes.conf in a temporary folder, so a killed node restarted
 * on its port rejoins), joined with `redis-cli --cluster create`. `kill(port)` crashes one node (SIGKILL),
 * `restart(port)` brings it back (empty; it rejoins as a replica of whoever holds its slots now).
 */
export async function startRedisCluster (opts: RedisClusterOptions = {}) {
  const primaries = opts.primaries ?? 3
  const replicas = opts.replicasPerPrimary ?? 1
  const count = primaries * (1 + replicas)
  const dir = mkdtempSync(join(tmpdir(), 'coldboard-cluster-'))
  const ports = opts.ports ?? []
  while (ports.length < count) {
    const p = await freePort()
    // The cluster bus listens on port + 10000: both must be free and below 65536.
    if (p + 10000 < 65536 && !ports.includes(p)) ports.push(p)
  }
  const auth = opts.password ? ['--requirepass', opts.password, '--masterauth', opts.password] : []
  const nodes: ClusterNode[] = []
  try {
    for (const port of ports.slice(0, count)) {
      const server = await startRedisServer({
        port,
        password: opts.password,
        args: [
          '--cluster-enabled', 'yes',
          '--cluster-config-file', `nodes-${port}.conf`,
          '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 2000),
          '--dir', dir,
          ...auth,
          ...(opts.announcePort ? ['--cluster-announce-port', String(opts.announcePort(port)), '--cluster-announce-bus-port', String(port + 10000)] : [])
        ]
      })
      nodes.push({ port, server })
    }
    await run('redis-cli', [
      ...(opts.password ? ['--no-auth-warning', '-a', opts.password] : []),
      '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas', String(replicas), '--cluster-yes'
    ], { timeout: 60_000 })
  } catch (err) {
    await Promise.all(nodes.map((n) => n.server.stop()))
    rmSync(dir, { recursive: true, force: true })
    throw err
  }

  const admin = (port: number) => {
    const c = new Redis({ host: '127.0.0.1', port, password: opts.password, lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
    c.on('error', () => {})
    return c
  }
  /** Runs one command on one node; null when the node does not answer. */
  async function on (port: number, ...args: Array<string | number>): Promise<unknown> {
    const c = admin(port)
    try {
      await c.connect()
      return await c.call(String(args[0]), ...args.slice(1))
    } catch {
      return null
    } finally {
      c.disconnect()
    }
  }
  const nodeOf = (port: number) => {
    const n = nodes.find((x) => x.port === port)
    if (!n) throw new Error(`no cluster node on ${port}`)
    return n
  }
  // Announced port → the node's own port.
  const realPort = (announced: number): number => nodes.find((n) => (opts.announcePort?.(n.port) ?? n.port) === announced)?.port ?? announced
  const live = async () => (await Promise.all(nodes.map(async (n) => (await n.server.ping()) ? n : null))).filter((n): n is ClusterNode => n !== null)

  /** Each live node's view: its role, and for a replica the port of its primary. */
  async function roles (): Promise<Map<number, { role: 'master' | 'slave', primaryPort?: number }>> {
    const out = new Map<number, { role: 'master' | 'slave', primaryPort?: number }>()
    for (const n of await live()) {
      const r = await on(n.port, 'ROLE') as [string, ...unknown[]] | null
      if (!r) continue
      if (r[0] === 'master') out.set(n.port, { role: 'master' })
      else out.set(n.port, { role: 'slave', primaryPort: realPort(Number(r[2])) })
    }
    return out
  }

  const cluster = {
    nodes,
    ports: nodes.map((n) => n.port),
    password: opts.password,
    /** `host:port,…` as REDIS_CLUSTER_NODES takes it. */
    nodesEnv: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    /** Runs a command on a node (null when it does not answer). */
    on,
    /** The port a node announces (its proxy's, when there is one). */
    announced: (port: number) => opts.announcePort?.(port) ?? port,
    /** The port of the primary that serves `key`'s slot now, as the live nodes see it. */
    async primaryOf (key: string): Promise<number> {
      for (const n of await live()) {
        const slot = Number(await on(n.port, 'CLUSTER', 'KEYSLOT', key))
        const slots = await on(n.port, 'CLUSTER', 'SLOTS') as Array<[number, number, [string, number, ...unknown[]], ...unknown[]]> | null
        const range = slots?.find(([from, to]) => slot >= from && slot <= to)
        if (range) return realPort(Number(range[2][1]))
      }
      throw new Error(`no live node knows the slot of ${key}`)
    },
    /** The ports of `primary`'s replicas, as it reports them. */
    async replicasOf (primary: number): Promise<number[]> {
      return [...(await roles())].filter(([, r]) => r.role === 'slave' && r.primaryPort === primary).map(([port]) => port)
    },
    roles,
    /** Crashes a node (SIGKILL): no goodbye to its replicas or clients. */
    kill: (port: number) => nodeOf(port).server.stop('SIGKILL'),
    /** Starts a killed node again on its port; it rejoins the cluster from its nodes.conf. */
    restart: (port: number) => nodeOf(port).server.start(),
    /**
     * Waits until every live node says cluster_state:ok, every slot has a live primary and each primary has
     * `replicasPerPrimary` replicas in sync (when `fullyReplicated`).
     */
    async waitHealthy (o: { timeoutMs?: number, fullyReplicated?: boolean } = {}): Promise<void> {
      await waitFor(async () => {
        const up = await live()
        for (const n of up) {
          const info = String(await on(n.port, 'CLUSTER', 'INFO') ?? '')
          if (!info.includes('cluster_state:ok')) return false
        }
        if (!o.fullyReplicated) return true
        const r = await roles()
        const masters = [...r].filter(([, x]) => x.role === 'master').map(([p]) => p)
        if (masters.length !== primaries) return false
        for (const m of masters) {
          const info = String(await on(m, 'INFO', 'replication') ?? '')
          const online = info.split('\n').filter((l) => /^slave\d+:.*state=online/.test(l)).length
          if (online < replicas) return false
        }
        return true
      }, o.timeoutMs ?? 30_000, 'a healthy Redis Cluster')
    },
    async stop (): Promise<void> {
      await Promise.all(nodes.map((n) => n.server.stop()))
      rmSync(dir, { recursive: true, force: true })
    }
  }
  await cluster.waitHealthy({ fullyReplicated: true })
  return cluster
}
export type RedisClusterHandle = Awaited<ReturnType<typeof startRedisCluster>>
