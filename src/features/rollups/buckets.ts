/** The rollup levels, their bucket widths (aligned on the epoch, UTC) and tables. */
export const LEVELS = {
  '5m': { ms: 5 * 60_000, table: 'reading_rollups_5m', interval: '5 minutes' },
  '1h': { ms: 3_600_000, table: 'reading_rollups_1h', interval: '1 hour' },
  '1d': { ms: 86_400_000, table: 'reading_rollups_1d', interval: '1 day' }
} as const
export type Level = keyof typeof LEVELS

export const floorTo = (ms: number, width: number): number => Math.floor(ms / width) * width
export const ceilTo = (ms: number, width: number): number => Math.ceil(ms / width) * width

/** A piece of a time window, in epoch milliseconds, half-open [from, to): whole buckets of a level, or raw readings. */
export interface Segment { level: Level | 'raw', from: number, to: number }

/**
 * Splits [from, to) into whole buckets of the coarsest level that fits (levels coarsest first), finer levels
 * toward the edges, and raw readings for what no bucket covers whole. Every piece lies inside one bucket of
 * each coarser level, hence inside one UTC day.
 */
export function decompose (from: number, to: number, levels: readonly Level[]): Segment[] {
  if (from >= to) return []
  const [level, ...finer] = levels
  if (level === undefined) return [{ level: 'raw', from, to }]
  const width = LEVELS[level].ms
  const a = ceilTo(from, width)
  const b = floorTo(to, width)
  if (a >= b) return decompose(from, to, finer)
  return [...decompose(from, a, finer), { level, from: a, to: b }, ...decompose(b, to, finer)]
}
