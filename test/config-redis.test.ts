import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../src/config.js'

/** How coldboard reaches Redis: one server, a Redis Cluster, or a primary found through Sentinel. */
describe('Redis topology configuration', () => {
  it('REDIS_CLUSTER_NODES: a cluster, with the password and a hash-tagged queue prefix', () => {
    const c = loadConfig({ REDIS_CLUSTER_NODES: 'r1:7000, r2:7001,10.0.0.3:7002', REDIS_PASSWORD: 'pw' })
    expect(c.redis).toEqual({ cluster: [{ host: 'r1', port: 7000 }, { host: 'r2', port: 7001 }, { host: '10.0.0.3', port: 7002 }], password: 'pw' })
    // BullMQ's scripts touch several keys of a queue: on a cluster they must share a slot.
    expect(c.queuePrefix).toBe('{coldboard:bull}')
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'r1:7000', REDIS_KEY_PREFIX: 'tenant-a:' }).queuePrefix).toBe('{tenant-a:bull}')
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'r1:7000', QUEUE_PREFIX: 'jobs:{a}' }).queuePrefix).toBe('jobs:{a}')
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'r1:7000', QUEUE_PREFIX: 'jobs' })).toThrow(/QUEUE_PREFIX: needs a \{hash tag\}/)
  })

  it('REDIS_SENTINELS and REDIS_SENTINEL_NAME: the sentinels and the primary\'s name, with the password', () => {
    expect(loadConfig({ REDIS_SENTINELS: 's1:26379,s2:26379,s3:26379', REDIS_SENTINEL_NAME: 'cb', REDIS_PASSWORD: 'pw' }).redis).toEqual({
      sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }, { host: 's3', port: 26379 }], name: 'cb', password: 'pw'
    })
    expect(loadConfig({ REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_NAME: 'cb' }).queuePrefix).toBe('coldboard:bull')
    expect(() => loadConfig({ REDIS_SENTINELS: 's1:26379' })).toThrow(/REDIS_SENTINEL_NAME: required/)
  })

  it('one server: REDIS_PASSWORD joins the URL target; without it the target is the URL alone', () => {
    expect(loadConfig({ REDIS_URL: 'redis://r:6379', REDIS_PASSWORD: 'pw' }).redis).toEqual({ url: 'redis://r:6379', password: 'pw' })
    expect(loadConfig({ REDIS_URL: 'redis://r:6379' }).redis).toEqual({ url: 'redis://r:6379' })
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'r1:7000', REDIS_DISABLED: 'true' }).redis).toBeNull()
  })

  it('refuses two ways to reach Redis, and malformed node lists', () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'r1:7000', REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_NAME: 'cb' })).toThrow(ConfigError)
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'r1:7000', REDIS_URL: 'redis://r:6379' })).toThrow(/REDIS_URL: not with REDIS_CLUSTER_NODES/)
    for (const bad of ['r1', 'r1:', ':7000', 'r1:7000,', 'r1:70000a', 'redis://r1:7000']) {
      expect(() => loadConfig({ REDIS_CLUSTER_NODES: bad }), bad).toThrow(/REDIS_CLUSTER_NODES: a comma-separated list of host:port/)
    }
    expect(() => loadConfig({ REDIS_SENTINELS: 's1:70000', REDIS_SENTINEL_NAME: 'cb' })).toThrow(/REDIS_SENTINELS: ports from 1 to 65535/)
  })
})
