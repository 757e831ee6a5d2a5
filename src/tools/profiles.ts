import type { UnitType } from '../db/schema.js'
import type { Rng } from './random.js'

/** How one kind of refrigeration unit behaves: thresholds, noise, and how often and how far it leaves its set point. */
export interface TypeProfile {
  label: string
  tempMin: number
  tempMax: number
  /** Share of units of this type in a typical organization. */
  weight: number
  noise: number
  /** Slow drift (ambient, load) amplitude and the compressor cycle amplitude, °C. */
  drift: [number, number]
  cycle: [number, number]
  /** Door openings per daytime hour, and how far one pushes the temperature up, °C. */
  doorsPerHour: [number, number]
  doorRise: [number, number]
  /** Defrost cycles (freezers): every `defrostEveryHours`, a bump of `defrostRise` °C. */
  defrostEveryHours?: [number, number]
  defrostRise?: [number, number]
  /** Directions an ongoing failure can take. */
  failures: Array<'hot' | 'cold'>
}

export const profiles: Record<UnitType, TypeProfile> = {
  fridge: {
    label: 'Fridge',
    tempMin: 2,
    tempMax: 8,
    weight: 35,
    noise: 0.12,
    drift: [0.2, 0.6],
    cycle: [0.2, 0.4],
    doorsPerHour: [0.3, 0.9],
    doorRise: [0.6, 3.1],
    failures: ['hot', 'hot', 'hot', 'cold']
  },
  freezer: {
    label: 'Freezer',
    tempMin: -25,
    tempMax: -15,
    weight: 20,
    noise: 0.25,
    drift: [0.3, 0.8],
    cycle: [0.4, 0.8],
    doorsPerHour: [0.1, 0.4],
    doorRise: [1.5, 4.5],
    defrostEveryHours: [6, 8],
    defrostRise: [2, 4.8],
    failures: ['hot']
  },
  walk_in_cooler: {
    label: 'Walk-in Cooler',
    tempMin: 1,
    tempMax: 5,
    weight: 15,
    noise: 0.1,
    drift: [0.15, 0.35],
    cycle: [0.15, 0.3],
    doorsPerHour: [0.8, 2],
    doorRise: [0.4, 1.6],
    failures: ['hot', 'hot', 'cold']
  },
  walk_in_freezer: {
    label: 'Walk-in Freezer',
    tempMin: -25,
    tempMax: -18,
    weight: 10,
    noise: 0.2,
    drift: [0.2, 0.5],
    cycle: [0.3, 0.5],
    doorsPerHour: [0.4, 1],
    doorRise: [0.6, 2.5],
    defrostEveryHours: [6, 8],
    defrostRise: [1.5, 3.5],
    failures: ['hot']
  },
  display_case: {
    label: 'Display Case',
    tempMin: 0,
    tempMax: 5,
    weight: 15,
    noise: 0.15,
    drift: [0.15, 0.4],
    cycle: [0.2, 0.35],
    doorsPerHour: [1, 2.5],
    doorRise: [0.3, 1.8],
    failures: ['hot', 'cold']
  },
  blast_chiller: {
    label: 'Blast Chiller',
    tempMin: -40,
    tempMax: 3,
    weight: 5,
    noise: 0.4,
    drift: [0.5, 1.5],
    cycle: [0.5, 1],
    doorsPerHour: [0.1, 0.3],
    doorRise: [6, 22],
    failures: ['hot']
  }
}

const unitTypes = Object.keys(profiles) as UnitType[]
const totalWeight = unitTypes.reduce((s, t) => s + profiles[t].weight, 0)

export function pickUnitType (rng: Rng): UnitType {
  let r = rng.next() * totalWeight
  for (const t of unitTypes) {
    r -= profiles[t].weight
    if (r < 0) return t
  }
  return 'fridge'
}

const orgFirst = ['Harbor', 'Northwind', 'Maple', 'Riverside', 'Summit', 'Blue Ridge', 'Golden Gate', 'Cedar', 'Evergreen',
  'Lakeside', 'Oak & Ember', 'Silver Birch', 'Redwood', 'Meadow', 'Granite', 'Coastal', 'Willow', 'Ironbridge', 'Sunrise', 'Alpine']
const orgSecond = ['Bistro Group', 'Foods', 'Biolabs', 'Cold Storage', 'Pharmacy', 'Market', 'Catering', 'Bakery', 'Seafood',
  'Dairy Co', 'Kitchens', 'Provisions', 'Clinic', 'Grocers', 'Creamery']
const siteNames = ['Downtown', 'Airport', 'Harbor Front', 'Main Street', 'Central Kitchen', 'Warehouse North', 'Lab Building B',
  'Riverside Mall', 'Old Town', 'Distribution Center', 'University Campus', 'Station Square', 'West End', 'Market Hall']

/** The i-th organization name of a run: every combination once before any repeats (then numbered). */
export function orgName (i: number, offset: number): string {
  const combos = orgFirst.length * orgSecond.length
  // 7919 is prime, so coprime with the number of combinations: i ↦ j is a permutation.
  const j = (offset + i * 7919) % combos
  const base = `${orgFirst[j % orgFirst.length]!} ${orgSecond[Math.floor(j / orgFirst.length)]!}`
  return i < combos ? base : `${base} ${Math.floor(i / combos) + 1}`
}

export function siteNamesFor (count: number, rng: Rng): string[] {
  const names = rng.shuffle([...siteNames])
  return Array.from({ length: count }, (_, i) => i < names.length ? names[i]! : `Site ${i + 1}`)
}

export function slugify (name: string): string {
  return name.toLowerCase().replace(/&/g, 'and').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'org'
}
