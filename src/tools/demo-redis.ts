import { redisAnswers, startRedisServer } from '../lib/redis-server.js'

export type DemoRedis =
  | { kind: 'configured', url: string }
  | { kind: 'private', url: string, stop: () => Promise<void> }
  | { kind: 'none', reason: string }

/**
 * The demo's Redis: the configured one when it answers; else a private redis-server (nothing saved to
 * disk, noeviction) when one is installed; else none, and the demo runs without the cache.
 */
export async function resolveDemoRedis (configuredUrl: string | null, password?: string): Promise<DemoRedis> {
  if (configuredUrl === null) return { kind: 'none', reason: 'REDIS_DISABLED is set' }
  if (await redisAnswers(configuredUrl, password)) return { kind: 'configured', url: configuredUrl }
  try {
    const server = await startRedisServer({ startTimeoutMs: 5000 })
    return { kind: 'private', url: server.url, stop: () => server.stop('SIGTERM') }
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT'
    return { kind: 'none', reason: `no Redis answers at ${configuredUrl} and ${missing ? 'redis-server is not installed' : 'a private redis-server did not start'}` }
  }
}
