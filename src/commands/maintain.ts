import pino from 'pino'
import type { Config } from '../config.js'
import { createDatabase } from '../infra/postgres.js'
import { systemClock } from '../lib/clock.js'
import { createMaintenance, type MaintenanceSummary } from '../features/maintenance/service.js'

/** What a maintenance run did, one line per kind of change, for people. */
export function formatMaintenance (s: MaintenanceSummary): string[] {
  const lines: string[] = []
  lines.push(s.created.length > 0 ? `created ${s.created.join(', ')}` : 'created no partition (every month up to two ahead has one)')
  for (const m of s.moved) lines.push(`moved ${m.readings} readings from sensor_readings_default into ${m.partition}`)
  lines.push(s.dropped.length > 0 ? `dropped ${s.dropped.join(', ')}` : 'dropped no partition (none entirely older than READINGS_RETENTION_DAYS)')
  lines.push(`pruned rollups: ${s.pruned['5m']} 5-minute, ${s.pruned['1h']} hourly, ${s.pruned['1d']} daily`)
  lines.push(`raw readings kept from ${s.horizons.readings ?? 'the beginning'}; hourly and daily rollups from ${s.horizons.rollups}`)
  return lines
}

/** `maintain`: partitions ahead, default partition emptied, retention; prints what it created and dropped. */
export async function maintain (_argv: string[], config: () => Config): Promise<void> {
  const cfg = config()
  const database = await createDatabase({ databaseUrl: cfg.DATABASE_URL, dataDir: cfg.DATA_DIR })
  try {
    await database.migrate()
    const maintenance = createMaintenance({
      db: database.db,
      clock: systemClock,
      readingsRetentionDays: cfg.READINGS_RETENTION_DAYS,
      rollupRetentionDays: cfg.ROLLUP_RETENTION_DAYS,
      log: pino({ level: 'warn' }, pino.destination(2))
    })
    for (const line of formatMaintenance(await maintenance.run())) process.stdout.write(line + '\n')
  } finally {
    await database.close()
  }
}
