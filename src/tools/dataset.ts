import { randomInt } from 'node:crypto'
import { sql } from 'drizzle-orm'
import { alerts, devices, organizations, sites, units } from '../db/schema.js'
import { arrayLiteral, type Db, type Tx } from '../infra/postgres.js'
import type { Clock } from '../lib/clock.js'
import { ensureMonthPartitions } from '../features/maintenance/partitions.js'
import { planOrganization, planWindow, type OrgPlan, type UnitPlan, type Window } from './plan.js'
import { createRng, deriveSeed } from './random.js'
import { replayUnit, type SeedAlert } from './replay.js'
import { generateSeries } from './series.js'

const DAY = 86_400_000
/** Readings per INSERT statement: large enough to amortise the round trip, small enough to stay a few hundred KB. */
const READINGS_PER_STATEMENT = 60_000

export interface SeedOptions {
  orgs: number
  /** Units per organization (one device each). */
  units: number
  hours: number
  intervalSeconds: number
  /** Sites per organization; random 1–3 when absent. */
  sites?: number
  /** Makes the data reproducible; random (and reported in the result) when absent. */
  seed?: number
  offlineAfterMinutes: number
  confirmMinutes: number
  /** Organizations written at once, each in its own transaction (PostgreSQL pool); 1 on PGlite. */
  concurrency?: number
  /** Fixed name and slug per organization (the demo's 'demo' org); generated otherwise. */
  organizations?: Array<{ name: string, slug: string }>
  onProgress?: (p: { done: number, total: number, orgId: string, slug: string, readings: number, ms: number }) => void
}

export interface SeedResult {
  orgIds: string[]
  readings: number
  ms: number
  seed: number
}

/**
 * Writes a realistic dataset: organizations, sites, units with thresholds by type, one device each,
 * readings every `intervalSeconds` over the last `hours`, and the unit states, device statuses and
 * alerts that ingestion and the sweeper would have produced from those readings (tools/replay.ts).
 * Each organization is one transaction; readings go in as server-side expansions of compact arrays, and
 * their insert trigger maintains the rollups in the same statements.
 */
export async function seedDataset (db: Db, opts: SeedOptions, clock: Clock): Promise<SeedResult> {
  const started = performance.now()
  const seed = opts.seed ?? randomInt(0, 2 ** 31)
  const win = planWindow(clock.now().getTime(), opts.hours, opts.intervalSeconds)
  const planOpts = { ...opts, seed }
  // The window's months get partitions of their own first (else their readings would land in the default one).
  await ensureMonthPartitions(db, win.startMs, win.nowMs)
  const orgIds: string[] = new Array(opts.orgs)
  let readings = 0
  let next = 0
  let done = 0

  const worker = async () => {
    while (next < opts.orgs) {
      const i = next++
      const t0 = performance.now()
      const plan = planOrganization(i, planOpts, win, opts.organizations?.[i])
      const res = await db.transaction((tx) => writeOrganization(tx, plan, win, planOpts))
      orgIds[i] = res.orgId
      readings += res.readings
      opts.onProgress?.({ done: ++done, total: opts.orgs, orgId: res.orgId, slug: plan.slug, readings: res.readings, ms: Math.round(performance.now() - t0) })
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 1, opts.orgs)) }, worker))
  return { orgIds, readings, ms: Math.round(performance.now() - started), seed }
}

async function writeOrganization (tx: Tx, plan: OrgPlan, win: Window, opts: SeedOptions & { seed: number }) {
  // Seeding is re-runnable from scratch: trading durability of this one transaction for speed is fine.
  await tx.execute(sql`SET LOCAL synchronous_commit = off`)
  const orgCreated = new Date(win.startMs - 60 * DAY)
  const [org] = await tx.insert(organizations).values({ name: plan.name, slug: plan.slug, createdAt: orgCreated })
    .returning({ id: organizations.id })
  const orgId = org!.id
  const siteRows = await tx.insert(sites).values(plan.sites.map((name) => ({ organizationId: orgId, name, createdAt: orgCreated })))
    .returning({ id: sites.id })

  const unitCreatedMs = win.startMs - 30 * DAY
  const ackRng = createRng(deriveSeed(opts.seed, 0x0c, plan.index))
  let readings = 0
  for (const chunk of chunkUnits(plan.units, win.perUnit)) {
    const series = chunk.map((u) => generateSeries({ ...u, startMs: win.startMs, intervalMs: win.intervalMs }))
    const replays = chunk.map((u, i) => replayUnit({
      temps: series[i]!,
      tempMin: u.tempMin,
      tempMax: u.tempMax,
      startMs: win.startMs,
      intervalMs: win.intervalMs,
      nowMs: win.nowMs,
      createdAtMs: unitCreatedMs,
      offlineAfterMs: opts.offlineAfterMinutes * 60_000,
      confirmMs: opts.confirmMinutes * 60_000,
      // Managers acknowledge about a third of the confirmed excursions.
      acknowledge: (a: SeedAlert) => a.severity === 'critical' && ackRng.next() < 0.35
    }))
    const createdAt = new Date(unitCreatedMs)
    await tx.insert(units).values(chunk.map((u, i) => ({
      id: u.id,
      organizationId: orgId,
      siteId: siteRows[u.siteIndex]!.id,
      name: u.name,
      unitType: u.unitType,
      tempMin: u.tempMin,
      tempMax: u.tempMax,
      state: replays[i]!.state,
      lastTemperature: replays[i]!.lastTemperature,
      lastReadingAt: replays[i]!.lastReadingAt,
      stateChangedAt: replays[i]!.stateChangedAt,
      createdAt
    })))
    await tx.insert(devices).values(chunk.map((u, i) => ({
      id: u.deviceId,
      organizationId: orgId,
      unitId: u.id,
      deviceEui: u.deviceEui,
      status: replays[i]!.state === 'offline' ? 'offline' as const : 'online' as const,
      lastSeenAt: replays[i]!.lastReadingAt,
      battery: u.battery,
      createdAt
    })))
    readings += await insertReadings(tx, orgId, chunk, series, win)
    const alertRows = chunk.flatMap((u, i) => replays[i]!.alerts.map((a) => ({ ...a, organizationId: orgId, unitId: u.id })))
    for (let i = 0; i < alertRows.length; i += 1000) await tx.insert(alerts).values(alertRows.slice(i, i + 1000))
  }
  return { orgId, readings }
}

/** Groups units so that one group's readings fit a few statements; at most 500 units (the units/devices inserts). */
function * chunkUnits (list: UnitPlan[], perUnit: number): Generator<UnitPlan[]> {
  const size = Math.max(1, Math.min(500, Math.floor(4 * READINGS_PER_STATEMENT / Math.max(1, perUnit))))
  for (let i = 0; i < list.length; i += size) yield list.slice(i, i + size)
}

/**
 * Readings as compact arrays: per segment (a run of one unit's readings) its ids and first index, and
 * the temperatures in hundredths with the segment each belongs to. PostgreSQL expands them into rows,
 * computing recorded_at from the index. Works the same on node-postgres and PGlite.
 */
async function insertReadings (tx: Tx, orgId: string, chunk: UnitPlan[], series: Int32Array[], win: Window): Promise<number> {
  let written = 0
  let segs: Array<{ unit: string, device: string, k0: number, temps: Int32Array }> = []
  let pending = 0
  const flush = async () => {
    if (pending === 0) return
    const temps: string[] = []
    const segOf: string[] = []
    const offsets: string[] = []
    segs.forEach((s, idx) => {
      offsets.push(String(temps.length))
      for (let i = 0; i < s.temps.length; i++) { temps.push(String(s.temps[i])); segOf.push(String(idx + 1)) }
    })
    await tx.execute(sql`
      WITH seg AS (
        SELECT * FROM unnest(${arrayLiteral(segs.map((s) => s.unit))}::uuid[], ${arrayLiteral(segs.map((s) => s.device))}::uuid[],
                             ${arrayLiteral(segs.map((s) => String(s.k0)))}::int[], ${arrayLiteral(offsets)}::int[])
          WITH ORDINALITY AS t(unit_id, device_id, k0, off, idx)
      )
      INSERT INTO sensor_readings (organization_id, unit_id, device_id, temperature, recorded_at, received_at)
      SELECT ${orgId}::uuid, seg.unit_id, seg.device_id, r.temp / 100.0, x.at,
             LEAST(x.at + interval '2 seconds', ${new Date(win.nowMs).toISOString()}::timestamptz)
      FROM unnest(${arrayLiteral(temps)}::int[], ${arrayLiteral(segOf)}::int[]) WITH ORDINALITY AS r(temp, seg, i)
      JOIN seg ON seg.idx = r.seg
      CROSS JOIN LATERAL (SELECT ${new Date(win.startMs).toISOString()}::timestamptz
        + (seg.k0 + r.i - 1 - seg.off) * ${win.intervalMs}::bigint * interval '1 millisecond' AS at) x`)
    written += pending
    segs = []
    pending = 0
  }
  for (let u = 0; u < chunk.length; u++) {
    const all = series[u]!
    for (let k0 = 0; k0 < all.length;) {
      const take = Math.min(all.length - k0, READINGS_PER_STATEMENT - pending)
      segs.push({ unit: chunk[u]!.id, device: chunk[u]!.deviceId, k0, temps: all.subarray(k0, k0 + take) })
      pending += take
      k0 += take
      if (pending >= READINGS_PER_STATEMENT) await flush()
    }
  }
  await flush()
  return written
}
