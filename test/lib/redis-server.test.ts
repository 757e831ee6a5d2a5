import { readFileSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../../src/lib/redis-server.js'
import { startPrivateRedis } from '../helpers/redis.js'

/**
 * The private redis-server the fault tests, the demo and the benchmark restart: a restart on a port that another
 * process's server took meanwhile must fail, not pass that server off as its own (a fault test then goes on against
 * a Redis that is not the one it controls).
 */
describe('startRedisServer', () => {
  const started: RedisServer[] = []
  afterEach(async () => { for (const s of started.splice(0)) await s.stop() })

  it('restarts on its port, and refuses a port another server took while it was down', async () => {
    const a = await startRedisServer()
    started.push(a)
    const firstPid = a.pid()
    await a.stop()
    expect(await a.ping()).toBe(false)
    await a.start()
    expect(await a.ping()).toBe(true)
    expect(a.pid()).not.toBe(firstPid)

    await a.stop()
    const squatter = await startRedisServer({ port: a.port })
    started.push(squatter)
    await expect(a.start()).rejects.toThrow(/is the port taken/)
    // The other server is untouched.
    expect(await squatter.ping()).toBe(true)
  })

  it("the fault tests' servers are on ports the OS hands no one else (below its ephemeral range, a block per worker)", async () => {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    const a = await startPrivateRedis()
    started.push(a)
    const b = await startPrivateRedis()
    started.push(b)
    for (const s of [a, b]) expect(s.port).toBeLessThan(low!)
    expect(b.port).not.toBe(a.port)
    await a.stop()
    await a.start()
    expect(await a.ping()).toBe(true)
  })
})
