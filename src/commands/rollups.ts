import { parseArgs } from 'node:util'
import type { Config } from '../config.js'
import { createDatabase } from '../infra/postgres.js'
import { createRollupsService, type RebuildOptions } from '../features/rollups/service.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Parses `rollups rebuild` flags; throws an Error whose message names the flag. */
export function parseRebuildArgs (argv: string[]): RebuildOptions {
  const [sub, ...rest] = argv
  if (sub !== 'rebuild') throw new Error('rollups: usage: coldboard rollups rebuild [--org ID] [--from ISO] [--to ISO]')
  let values: Record<string, string | undefined>
  try {
    values = parseArgs({ args: rest, strict: true, allowPositionals: false, options: { org: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' } } }).values
  } catch (err) {
    throw new Error(`rollups: ${(err as Error).message}`)
  }
  const instant = (flag: 'from' | 'to'): Date | undefined => {
    const raw = values[flag]
    if (raw === undefined) return undefined
    const d = new Date(raw)
    if (Number.isNaN(d.getTime())) throw new Error(`rollups: --${flag} must be an ISO 8601 date or date-time, got "${raw}"`)
    return d
  }
  if (values.org !== undefined && !UUID.test(values.org)) throw new Error(`rollups: --org must be an organization id (uuid), got "${values.org}"`)
  const opts: RebuildOptions = { orgId: values.org, from: instant('from'), to: instant('to') }
  if (opts.from && opts.to && opts.from.getTime() >= opts.to.getTime()) throw new Error('rollups: --from must be before --to')
  return opts
}

/** `rollups rebuild [--org ID] [--from ISO] [--to ISO]`: recomputes rollups from raw readings (idempotent). */
export async function rollups (argv: string[], config: () => Config): Promise<void> {
  const opts = parseRebuildArgs(argv)
  const cfg = config()
  const database = await createDatabase({ databaseUrl: cfg.DATABASE_URL, dataDir: cfg.DATA_DIR })
  try {
    await database.migrate()
    const service = createRollupsService({ db: database.db })
    for (const r of await service.rebuild(opts)) {
      process.stdout.write(`rebuilt ${r.orgId} [${r.from ?? 'the beginning'}, ${r.to ?? 'now'}): ${r.readings} readings in ${r.buckets} 5-minute buckets\n`)
    }
  } finally {
    await database.close()
  }
}
