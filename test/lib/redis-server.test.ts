import { afterEach, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../../src/lib/redis-server.js'

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
})
