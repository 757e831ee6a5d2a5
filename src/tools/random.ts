/** A small seeded PRNG (mulberry32): the dataset must be reproducible from `--seed`, Math.random is not. */
export interface Rng {
  /** Uniform in [0, 1). */
  next (): number
  /** Uniform in [min, max). */
  between (min: number, max: number): number
  /** Integer in [min, max]. */
  int (min: number, max: number): number
  /** Standard normal (Box–Muller). */
  gaussian (): number
  pick<T> (items: readonly T[]): T
  shuffle<T> (items: T[]): T[]
}

export function createRng (seed: number): Rng {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const rng: Rng = {
    next,
    between: (min, max) => min + (max - min) * next(),
    int: (min, max) => min + Math.floor((max - min + 1) * next()),
    gaussian: () => {
      const u = 1 - next()
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next())
    },
    pick: (items) => {
      if (items.length === 0) throw new Error('pick from an empty list')
      return items[Math.floor(next() * items.length)]!
    },
    shuffle: (items) => {
      for (let i = items.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1))
        const tmp = items[i]!
        items[i] = items[j]!
        items[j] = tmp
      }
      return items
    }
  }
  return rng
}

/** Derives an independent sub-seed, so one unit's series does not depend on how many were generated before it. */
export function deriveSeed (...parts: number[]): number {
  let h = 0x811c9dc5
  for (const p of parts) {
    h ^= p >>> 0
    h = Math.imul(h, 0x01000193) >>> 0
    h ^= h >>> 13
    h = Math.imul(h, 0x5bd1e995) >>> 0
    h ^= h >>> 15
  }
  return h >>> 0
}
