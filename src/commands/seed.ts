import { parseArgs } from 'node:util'
import type { Config } from '../config.js'
import { createDatabase } from '../infra/postgres.js'
import { systemClock } from '../lib/clock.js'
import { seedDataset } from '../tools/dataset.js'

export interface SeedArgs {
  orgs: number
  units: number
  hours: number
  intervalSeconds: number
  sites?: number
  seed?: number
}

const MAX_READINGS = 100_000_000
const MAX_PER_UNIT = 1_000_000

/** Parses and validates `seed` flags; throws an Error whose message names the flag. */
export function parseSeedArgs (argv: string[]): SeedArgs {
  let values: Record<string, string | undefined>
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        orgs: { type: 'string', default: '1' },
        units: { type: 'string', default: '20' },
        hours: { type: 'string', default: '24' },
        'interval-seconds': { type: 'string', default: '60' },
        sites: { type: 'string' },
        seed: { type: 'string' }
      }
    }).values
  } catch (err) {
    throw new Error(`seed: ${(err as Error).message}`)
  }
  const int = (flag: string, min: number, max: number): number | undefined => {
    const raw = values[flag]
    if (raw === undefined) return undefined
    const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new Error(`seed: --${flag} must be an integer from ${min} to ${max}, got "${raw}"`)
    }
    return n
  }
  const args: SeedArgs = {
    orgs: int('orgs', 1, 10_000)!,
    units: int('units', 1, 10_000)!,
    hours: int('hours', 1, 24 * 366)!,
    intervalSeconds: int('interval-seconds', 1, 86_400)!,
    sites: int('sites', 1, 50),
    seed: int('seed', 0, 2 ** 31 - 1)
  }
  const perUnit = Math.floor(args.hours * 3600 / args.intervalSeconds)
  if (perUnit < 1) throw new Error(`seed: --interval-seconds ${args.intervalSeconds} is longer than --hours ${args.hours}`)
  if (perUnit > MAX_PER_UNIT) {
    throw new Error(`seed: ${perUnit} readings per unit is more than ${MAX_PER_UNIT}; use fewer --hours or a longer --interval-seconds`)
  }
  const total = perUnit * args.units * args.orgs
  if (total > MAX_READINGS) {
    throw new Error(`seed: ${total} readings is more than ${MAX_READINGS}; seed in several runs or with fewer/larger parameters`)
  }
  if (args.sites !== undefined && args.sites > args.units) throw new Error(`seed: --sites ${args.sites} is more than --units ${args.units}`)
  return args
}

/** `seed --orgs N --units M --hours H --interval-seconds S [--sites K] [--seed n]`: org ids on stdout, progress on stderr. */
export async function seed (argv: string[], config: () => Config): Promise<void> {
  const args = parseSeedArgs(argv)
  const cfg = config()
  const database = await createDatabase({ databaseUrl: cfg.DATABASE_URL, dataDir: cfg.DATA_DIR })
  const log = (line: string) => process.stderr.write(line + '\n')
  try {
    await database.migrate()
    const expected = args.orgs * args.units * Math.floor(args.hours * 3600 / args.intervalSeconds)
    const where = database.kind === 'pg' ? 'PostgreSQL' : `the embedded database at ${database.dataDir}`
    log(`seeding ${args.orgs} org(s) × ${args.units} units × ${args.hours} h every ${args.intervalSeconds} s (up to ${expected} readings) into ${where}`)
    const res = await seedDataset(database.db, {
      ...args,
      offlineAfterMinutes: cfg.OFFLINE_AFTER_MINUTES,
      confirmMinutes: cfg.CONFIRM_MINUTES,
      // Organizations in parallel on the server; PGlite is single-connection, so one at a time.
      concurrency: database.kind === 'pg' ? 4 : 1,
      onProgress: (p) => log(`  [${p.done}/${p.total}] ${p.slug} ${p.orgId}: ${p.readings} readings in ${(p.ms / 1000).toFixed(1)} s`)
    }, systemClock)
    for (const id of res.orgIds) process.stdout.write(id + '\n')
    const rate = res.ms > 0 ? Math.round(res.readings / (res.ms / 1000)) : res.readings
    log(`seeded ${res.orgIds.length} org(s), ${res.readings} readings in ${(res.ms / 1000).toFixed(1)} s (${rate} readings/s); --seed ${res.seed} reproduces the data`)
  } finally {
    await database.close()
  }
}
