/**
 * The Redis client for the cache connection (design log D6 chose ioredis): what one cached read costs the client
 * library, with nothing else in the process. Each client GETs the same ~1 KB dashboard-sized value as a Buffer
 * from a private redis-server, with `--concurrency` reads outstanding (the way concurrent HTTP requests issue
 * them), for `--seconds` per round; clients are interleaved `--rounds` times and each figure is the median round.
 *
 *   npx tsx bench/redis-clients.ts [--seconds 5] [--rounds 3] [--concurrency 10]
 *
 * Writes bench-out/redis-clients.json. docs/caching.md ("The Redis client") has the figures and the decision.
 */
import { parseArgs } from 'node:util'
import { createClient, RESP_TYPES } from '@redis/client'
import { Redis as Ioredis5 } from 'ioredis'
import { Redis as Ioredis6 } from 'ioredis6'
import { startBenchRedis } from './lib/redis-server.js'
import { log, machine, markdownTable, writeResult } from './lib/stats.js'

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '10' }
  }
})
const SECONDS = Number(args.seconds)
const ROUNDS = Number(args.rounds)
const CONCURRENCY = Number(args.concurrency)
const KEY = 'bench:clients:{org}:entry'

type Get = (key: string) => Promise<Buffer | null>
interface Client { name: string, get: Get, close: () => Promise<void> }

/** Closed loop: `CONCURRENCY` reads in flight for `seconds`; reads per second. */
async function drive (get: Get, seconds: number): Promise<number> {
  const until = performance.now() + seconds * 1000
  let n = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < until) {
      const v = await get(KEY)
      if (v === null || v.length === 0) throw new Error('the value is missing')
      n++
    }
  }))
  return n / seconds
}

async function main (): Promise<void> {
  const server = await startBenchRedis()
  const clients: Client[] = []
  try {
    await server.client.set(KEY, Buffer.alloc(1100, 'x'))
    const io5 = new Ioredis5(server.url, { maxRetriesPerRequest: 1, commandTimeout: 250 })
    const io5p = new Ioredis5(server.url, { maxRetriesPerRequest: 1, commandTimeout: 250, enableAutoPipelining: true })
    const io6 = new Ioredis6(server.url, { maxRetriesPerRequest: 1, commandTimeout: 250 })
    const io6p = new Ioredis6(server.url, { maxRetriesPerRequest: 1, commandTimeout: 250, enableAutoPipelining: true })
    const nr = createClient({ url: server.url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
    await nr.connect()
    // What the cache needs: a bounded wait (REDIS_COMMAND_TIMEOUT_MS) and no offline queue (fail fast while away).
    const nrt = createClient({ url: server.url, disableOfflineQueue: true, commandOptions: { timeout: 250 } }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
    nrt.on('error', () => {})
    await nrt.connect()
    clients.push(
      { name: 'ioredis 5 (coldboard today)', get: (k) => io5.getBuffer(k), close: async () => { io5.disconnect() } },
      { name: 'ioredis 5, auto-pipelined (coldboard\'s cache reads on a cluster)', get: (k) => io5p.getBuffer(k), close: async () => { io5p.disconnect() } },
      { name: 'ioredis 6', get: (k) => io6.getBuffer(k), close: async () => { io6.disconnect() } },
      { name: 'ioredis 6, auto-pipelined', get: (k) => io6p.getBuffer(k), close: async () => { io6p.disconnect() } },
      { name: 'node-redis 5 (@redis/client)', get: (k) => nr.get(k) as Promise<Buffer | null>, close: async () => { nr.destroy() } },
      { name: 'node-redis 5, 250 ms command timeout, no offline queue', get: (k) => nrt.get(k) as Promise<Buffer | null>, close: async () => { nrt.destroy() } }
    )
    for (const c of clients) await drive(c.get, 1) // warm-up: JIT, connection
    const runs: Record<string, number[]> = Object.fromEntries(clients.map((c) => [c.name, []]))
    for (let round = 1; round <= ROUNDS; round++) {
      for (const c of clients) {
        const rate = await drive(c.get, SECONDS)
        runs[c.name]!.push(rate)
        log(`round ${round}/${ROUNDS} ${c.name}: ${Math.round(rate)} GET/s`)
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    const base = median(runs[clients[0]!.name]!)
    const rows = clients.map((c) => {
      const m = median(runs[c.name]!)
      return { client: c.name, getsPerSecond: Math.round(m), ratioToIoredis5: Math.round((m / base) * 100) / 100, runs: runs[c.name]!.map(Math.round) }
    })
    console.log(markdownTable(['client', 'GET/s (median)', '× ioredis 5'], rows.map((r) => [r.client, r.getsPerSecond, r.ratioToIoredis5])))
    const file = writeResult('redis-clients', { machine: machine(), seconds: SECONDS, rounds: ROUNDS, concurrency: CONCURRENCY, valueBytes: 1100, rows })
    log(`wrote ${file}`)
  } finally {
    for (const c of clients) await c.close()
    await server.stop()
  }
}

await main()
