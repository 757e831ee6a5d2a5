import { eq, sql } from 'drizzle-orm'
import { expect } from 'vitest'
import type { App } from '../../src/app.js'
import { units } from '../../src/db/schema.js'
import { rows, type Db } from '../../src/infra/postgres.js'
import { runEventStream, type StreamFigures } from './event-stream.js'
import type { OrgFixture } from './fixtures.js'
import { waitFor } from './redis.js'

export interface FailoverStreamResult {
  figures: StreamFigures
  /** Readings of the stream found in PostgreSQL afterwards. */
  readingsStored: number
  killedAtMs: number
  failedOverAtMs: number
  /** When both instances served the units panel from the cache again. */
  resumedAtMs: number
}

/**
 * The event stream of test/helpers/event-stream.ts on two instances (readings into the first), with a Redis
 * primary killed at round 40: records when the failover was seen and when both instances cached again, runs 40
 * rounds more, then sends one last reading and waits until it is evaluated (its evaluation catches up whatever a
 * lost queue job left behind) before counting the readings stored.
 */
export async function streamThroughPrimaryKill (o: {
  writer: App
  bases: [string, string]
  db: Db
  fixture: OrgFixture
  token: string
  kill: () => Promise<void>
  /** Whether the organization's entries are on a new primary now. */
  failedOver: () => Promise<boolean>
}): Promise<FailoverStreamResult> {
  const fx = o.fixture
  const headers = { authorization: `Bearer ${o.token}` }
  const cacheOf = async (base: string) => (await fetch(`${base}/api/orgs/${fx.org.id}/dashboard/units/status`, { headers, signal: AbortSignal.timeout(10_000) })).headers.get('x-cache')
  const ingest = async (readings: Array<{ deviceEui: string, temperature: number, recordedAt: Date }>) => (await o.writer.inject({
    method: 'POST', url: '/api/ingest/readings', headers: { 'x-api-key': fx.apiKey }, payload: { readings: readings.map((r) => ({ ...r, recordedAt: r.recordedAt.toISOString() })) }
  })).statusCode
  let killedAt = -1
  let failedOverAt = -1
  let resumedAt = -1
  let resumedRound = -1
  const t = performance.now()
  const figures = await runEventStream({
    bases: o.bases,
    fixture: fx,
    token: o.token,
    roundTimeoutMs: 4000,
    ingest,
    between: async (round) => {
      if (round === 40) {
        killedAt = performance.now() - t
        await o.kill()
      } else if (killedAt >= 0 && failedOverAt < 0) {
        if (await o.failedOver()) failedOverAt = performance.now() - t
      } else if (failedOverAt >= 0 && resumedAt < 0) {
        // The failover fence lifts one TTL after each instance saw the new primary.
        if (await cacheOf(o.bases[0]) === 'hit' && await cacheOf(o.bases[1]) === 'hit') {
          resumedAt = performance.now() - t
          resumedRound = round
        }
      }
    },
    // Bounded in rounds and in time, so that a stream that never recovers ends with its figures (and fails on them)
    // inside the test's timeout rather than beyond it.
    until: (x) => (resumedRound >= 0 && x.rounds >= resumedRound + 40) || x.rounds >= 800 || performance.now() - t > 150_000
  })
  const last = new Date()
  await ingest([{ deviceEui: fx.devices[0]!.deviceEui, temperature: 5, recordedAt: last }])
  await waitFor(async () => (await o.db.select().from(units).where(eq(units.id, fx.units[0]!.id)))[0]!.lastReadingAt?.getTime() === last.getTime(), 15_000, 'the last reading evaluated')
  const [stored] = await rows<{ n: number }>(o.db, sql`select count(*)::int as n from sensor_readings where organization_id = ${fx.org.id}`)
  return { figures, readingsStored: stored!.n - 1, killedAtMs: Math.round(killedAt), failedOverAtMs: Math.round(failedOverAt), resumedAtMs: Math.round(resumedAt) }
}

/** Zero stale or failed reads, zero lost readings, a failover seen after the kill, caching back after it. */
export function expectFreshThroughFailover (r: FailoverStreamResult): void {
  expect(r.figures.failedReads).toEqual([])
  expect(r.figures.staleReads).toEqual([])
  expect(r.figures.stale).toBe(0)
  expect(r.readingsStored).toBe(r.figures.readingsSent)
  expect(r.failedOverAtMs).toBeGreaterThan(r.killedAtMs)
  expect(r.resumedAtMs).toBeGreaterThan(r.failedOverAtMs)
  expect(r.figures.events).toBeGreaterThanOrEqual(200)
  // Reads through the outage went to PostgreSQL; reads before and after it were served from the cache.
  expect(r.figures.outcomes.bypass).toBeGreaterThan(0)
  expect(r.figures.outcomes.hit).toBeGreaterThan(0)
}
