import { randomBytes, randomUUID } from 'node:crypto'
import type { UnitType } from '../db/schema.js'
import { orgName, pickUnitType, profiles, siteNamesFor, slugify } from './profiles.js'
import { createRng, deriveSeed } from './random.js'
import type { FailurePlan } from './series.js'

const MIN = 60_000
const HOUR = 3_600_000

/** The time window every organization of one seeding run shares. */
export interface Window {
  nowMs: number
  startMs: number
  intervalMs: number
  /** Readings per unit that reported the whole window. */
  perUnit: number
}

export interface UnitPlan {
  id: string
  deviceId: string
  deviceEui: string
  siteIndex: number
  name: string
  unitType: UnitType
  tempMin: number
  tempMax: number
  seed: number
  /** Readings written: `perUnit`, or fewer for a unit that went silent. */
  count: number
  offline: boolean
  failure?: FailurePlan
  battery: number
}

export interface OrgPlan {
  index: number
  name: string
  slug: string
  sites: string[]
  units: UnitPlan[]
}

export interface PlanOptions {
  units: number
  /** Sites per organization; random 1–3 when absent. Never more than the units. */
  sites?: number
  seed: number
  offlineAfterMinutes: number
  confirmMinutes: number
  /** ~3 % of units go silent before the end of the window (at least one per organization of 4+ units). */
  offlineShare?: number
  /** ~4 % of units are out of range at the end (at least one per organization of 3+ units). */
  failingShare?: number
}

export function planWindow (nowMs: number, hours: number, intervalSeconds: number): Window {
  const intervalMs = intervalSeconds * 1000
  const perUnit = Math.floor(hours * 3600 / intervalSeconds)
  const end = Math.floor(nowMs / 1000) * 1000
  return { nowMs: end, startMs: end - (perUnit - 1) * intervalMs, intervalMs, perUnit }
}

/**
 * Everything random about one organization, decided before any write: names, sites, unit types,
 * which units go silent and which are failing at the end. Ids, EUIs and slug suffixes are truly
 * random (a second run with the same seed must not collide); the data itself follows the seed.
 */
export function planOrganization (index: number, opts: PlanOptions, win: Window, fixed?: { name: string, slug: string }): OrgPlan {
  const rng = createRng(deriveSeed(opts.seed, 0x0a, index))
  const name = fixed?.name ?? orgName(index, deriveSeed(opts.seed))
  const slug = fixed?.slug ?? `${slugify(name)}-${randomBytes(3).toString('hex')}`
  const siteCount = Math.max(1, Math.min(opts.units, opts.sites ?? rng.int(1, 3)))
  const sites = siteNamesFor(siteCount, rng)

  const offlineCount = opts.units >= 4 ? Math.max(1, Math.round(opts.units * (opts.offlineShare ?? 0.03))) : 0
  const failingCount = opts.units >= 3 ? Math.max(1, Math.round(opts.units * (opts.failingShare ?? 0.04))) : 0
  const order = rng.shuffle(Array.from({ length: opts.units }, (_, i) => i))
  const offline = new Set(order.slice(0, offlineCount))
  const failing = new Set(order.slice(offlineCount, offlineCount + failingCount))

  const perType = new Map<UnitType, number>()
  const units: UnitPlan[] = []
  for (let u = 0; u < opts.units; u++) {
    const unitType = pickUnitType(rng)
    const n = (perType.get(unitType) ?? 0) + 1
    perType.set(unitType, n)
    const p = profiles[unitType]
    const plan: UnitPlan = {
      id: randomUUID(),
      deviceId: randomUUID(),
      deviceEui: randomBytes(8).toString('hex').toUpperCase(),
      siteIndex: u < siteCount ? u : rng.int(0, siteCount - 1),
      name: `${p.label} ${n}`,
      unitType,
      tempMin: p.tempMin,
      tempMax: p.tempMax,
      seed: deriveSeed(opts.seed, 0x0b, index, u),
      count: win.perUnit,
      offline: offline.has(u),
      battery: rng.int(35, 100)
    }
    if (plan.offline) {
      // Silent for more than the offline window (and then some), never for more than half the window.
      const windowMs = win.nowMs - win.startMs
      const gapMs = opts.offlineAfterMinutes * MIN + 5 * MIN + rng.next() * Math.min(2 * HOUR, windowMs / 2)
      plan.count = Math.max(0, Math.min(win.perUnit, Math.floor((win.nowMs - gapMs - win.startMs) / win.intervalMs) + 1))
      plan.battery = rng.int(0, 12)
    } else if (failing.has(u)) {
      plan.failure = planFailure(rng.next(), rng.next(), rng.pick(p.failures), opts.confirmMinutes, win)
    }
    units.push(plan)
  }
  return { index, name, slug, sites, units }
}

/** Some failures are younger than CONFIRM_MINUTES (warning), most are older (critical). */
function planFailure (r1: number, r2: number, direction: 'hot' | 'cold', confirmMinutes: number, win: Window): FailurePlan {
  const windowMin = (win.nowMs - win.startMs) / MIN
  const short = r1 < 0.35 && confirmMinutes > 3
  const minutes = short
    ? 2 + r2 * (confirmMinutes - 3)
    : Math.min(confirmMinutes + 2 + r2 * 140, Math.max(1, windowMin * 0.3))
  const back = Math.floor(minutes * MIN / win.intervalMs)
  return { direction, fromIndex: Math.max(0, win.perUnit - 1 - back), excess: 0.8 + r2 * 3 }
}
