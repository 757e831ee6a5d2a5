import { sql } from 'drizzle-orm'
import { rows, type Db } from '../../src/infra/postgres.js'

// The rollups a set of readings must produce, computed in plain JavaScript (never with the product's SQL), and the
// rollups the database holds, in the same shape, for the equality tests.

export interface StoredReading { unitId: string, deviceId: string, temperature: number, recordedAt: Date }
export interface ThresholdPeriod { validFrom: number, tempMin: number, tempMax: number }
export interface Bucket { readings: number, above: number, below: number, sumCents: number, minCents: number, maxCents: number }

export const WIDTHS = { '5m': 300_000, '1h': 3_600_000, '1d': 86_400_000 } as const
export type Width = keyof typeof WIDTHS
export const cents = (t: number) => Math.round(t * 100)

/** The readings the database keeps: the first of each (device, recordedAt), as ON CONFLICT DO NOTHING does. */
export class ReadingLog {
  readonly byKey = new Map<string, StoredReading>()
  add (list: StoredReading[]): void {
    for (const r of list) {
      const key = `${r.deviceId}|${r.recordedAt.getTime()}`
      if (!this.byKey.has(key)) this.byKey.set(key, r)
    }
  }

  get all (): StoredReading[] { return [...this.byKey.values()] }
}

/** The thresholds in force at `at`: the period with the greatest validFrom <= at. */
export function thresholdsAt (history: ThresholdPeriod[], at: number): ThresholdPeriod {
  let found: ThresholdPeriod | undefined
  for (const p of history) if (p.validFrom <= at && (!found || p.validFrom >= found.validFrom)) found = p
  if (!found) throw new Error('no thresholds in force')
  return found
}

export function expectedRollups (readings: StoredReading[], history: Map<string, ThresholdPeriod[]>, width: Width): Map<string, Bucket> {
  const out = new Map<string, Bucket>()
  for (const r of readings) {
    const t = thresholdsAt(history.get(r.unitId)!, r.recordedAt.getTime())
    const bucket = Math.floor(r.recordedAt.getTime() / WIDTHS[width]) * WIDTHS[width]
    const key = `${r.unitId}|${bucket}`
    const c = cents(r.temperature)
    const b = out.get(key) ?? { readings: 0, above: 0, below: 0, sumCents: 0, minCents: Infinity, maxCents: -Infinity }
    b.readings++
    if (c > cents(t.tempMax)) b.above++
    if (c < cents(t.tempMin)) b.below++
    b.sumCents += c
    b.minCents = Math.min(b.minCents, c)
    b.maxCents = Math.max(b.maxCents, c)
    out.set(key, b)
  }
  return out
}

export async function storedRollups (db: Db, orgId: string, width: Width): Promise<Map<string, Bucket>> {
  const found = await rows<Bucket & { unit_id: string, bucket_ms: number }>(db, sql`
    select unit_id, (extract(epoch from bucket) * 1000)::float8 as bucket_ms, readings, above, below,
      (temp_sum * 100)::float8 as "sumCents", (temp_min * 100)::float8 as "minCents", (temp_max * 100)::float8 as "maxCents"
    from ${sql.raw(`reading_rollups_${width}`)} where organization_id = ${orgId}`)
  return new Map(found.map((r) => [`${r.unit_id}|${r.bucket_ms}`, {
    readings: r.readings, above: r.above, below: r.below, sumCents: r.sumCents, minCents: r.minCents, maxCents: r.maxCents
  }]))
}

/** Sorted entries, for readable failures. */
export const entries = (m: Map<string, Bucket>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

/** PostgreSQL's numeric round(): half away from zero. */
export const roundHalfAway = (x: number) => Math.sign(x) * Math.round(Math.abs(x))
export const percent = (inRange: number, total: number) => total === 0 ? 100 : roundHalfAway(1000 * inRange / total) / 10
