import type { ParseArgsConfig } from 'node:util'

/** Everything that defines a workload; W1 below is the reference (docs/PERFORMANCE.md). */
export interface Workload {
  orgs: number
  /** Units per organization, one device each. */
  units: number
  /** History seeded before the run, one reading per `historyIntervalSeconds` per unit. */
  historyHours: number
  historyIntervalSeconds: number
  /** Every live device reports once per interval, at its own phase (the load is spread, not bursty). */
  readingIntervalSeconds: number
  /** Share of readings out of range, in excursions of a few readings (so units flip and alerts open and close). */
  outOfRange: number
  viewersPerOrg: number
  /** Each viewer reloads its five panels every this many seconds (and on every event, the affected ones). */
  pollSeconds: number
  /** The measured window. */
  durationSeconds: number
  /** Writers alone before the viewers join: PostgreSQL's write-only rate, subtracted to isolate dashboard reads. */
  writersOnlySeconds: number
  /** Seeds the dataset and the writers' excursions. */
  seed: number
}

export const W1: Workload = {
  orgs: 50,
  units: 100,
  historyHours: 24,
  historyIntervalSeconds: 60,
  readingIntervalSeconds: 60,
  outOfRange: 0.05,
  viewersPerOrg: 5,
  pollSeconds: 15,
  durationSeconds: 120,
  writersOnlySeconds: 30,
  seed: 20_250_105
}

/** Seconds-long variant for CI: the same code paths, meaningless figures. */
export const SMOKE: Workload = {
  orgs: 2,
  units: 5,
  historyHours: 1,
  historyIntervalSeconds: 60,
  readingIntervalSeconds: 2,
  outOfRange: 0.2,
  viewersPerOrg: 2,
  pollSeconds: 1,
  durationSeconds: 4,
  writersOnlySeconds: 2,
  seed: 7
}

const flags: Record<keyof Workload, { flag: string, min: number, max: number, integer: boolean }> = {
  orgs: { flag: 'orgs', min: 1, max: 10_000, integer: true },
  units: { flag: 'units', min: 1, max: 10_000, integer: true },
  historyHours: { flag: 'history-hours', min: 1, max: 24 * 31, integer: true },
  historyIntervalSeconds: { flag: 'history-interval-seconds', min: 1, max: 3600, integer: true },
  readingIntervalSeconds: { flag: 'reading-interval-seconds', min: 1, max: 3600, integer: false },
  outOfRange: { flag: 'out-of-range', min: 0, max: 0.5, integer: false },
  viewersPerOrg: { flag: 'viewers', min: 0, max: 1000, integer: true },
  pollSeconds: { flag: 'poll-seconds', min: 0.1, max: 3600, integer: false },
  durationSeconds: { flag: 'duration', min: 1, max: 24 * 3600, integer: false },
  writersOnlySeconds: { flag: 'writers-only', min: 1, max: 3600, integer: false },
  seed: { flag: 'seed', min: 0, max: 2 ** 31 - 1, integer: true }
}

/** parseArgs options for every workload flag (all strings, validated by `workloadFrom`). */
export const workloadFlagOptions: NonNullable<ParseArgsConfig['options']> = Object.fromEntries(
  Object.values(flags).map((f) => [f.flag, { type: 'string' as const }]))

/** The base workload with the flags given; throws an Error naming the flag. */
export function workloadFrom (values: Record<string, string | boolean | undefined>, base: Workload, command: string): Workload {
  const out = { ...base }
  for (const [field, f] of Object.entries(flags) as Array<[keyof Workload, typeof flags[keyof Workload]]>) {
    const raw = values[f.flag]
    if (raw === undefined || typeof raw === 'boolean') continue
    const n = Number(raw.trim())
    if (raw.trim() === '' || !Number.isFinite(n) || n < f.min || n > f.max || (f.integer && !Number.isInteger(n))) {
      throw new Error(`${command}: --${f.flag} must be ${f.integer ? 'an integer' : 'a number'} from ${f.min} to ${f.max}, got "${raw}"`)
    }
    out[field] = n
  }
  if (Math.floor(out.historyHours * 3600 / out.historyIntervalSeconds) < 1) {
    throw new Error(`${command}: --history-interval-seconds is longer than --history-hours`)
  }
  return out
}

export const workloadUsage = `workload flags (defaults: W1):
  --orgs N (50)  --units N per org, one device each (100)
  --history-hours H (24)  --history-interval-seconds S (60)    history seeded first
  --reading-interval-seconds S (60)   every live device reports once per S, phases spread
  --out-of-range F (0.05)             share of readings out of range, in short excursions
  --viewers N per org (5)  --poll-seconds S (15)   5 panels per viewer; refetch on every event
  --duration S (120)  --writers-only S (30)  --seed N`

/** One line describing a workload, for logs and reports. */
export function describeWorkload (w: Workload): string {
  return `${w.orgs} orgs × ${w.units} units (${w.orgs * w.units} devices), ${w.historyHours} h of history every ${w.historyIntervalSeconds} s; ` +
    `a reading per device every ${w.readingIntervalSeconds} s (${Math.round(w.outOfRange * 100)} % out of range); ` +
    `${w.viewersPerOrg} viewers per org polling every ${w.pollSeconds} s and refetching on events; ${w.durationSeconds} s measured`
}

/** Writers run this long before their write-only rate is measured (a third of the phase, at most 10 s). */
export const writersWarmupMs = (w: Workload): number => Math.min(10_000, (w.writersOnlySeconds * 1000) / 3)
