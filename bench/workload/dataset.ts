import { sql } from 'drizzle-orm'
import { apiKeys } from '../../src/db/schema.js'
import { generateApiKey } from '../../src/features/auth/tokens.js'
import { createDatabase } from '../../src/infra/postgres.js'
import { systemClock } from '../../src/lib/clock.js'
import { seedDataset } from '../../src/tools/dataset.js'
import { adminQuery, databaseUrl } from '../lib/seed.js'
import type { Workload } from './options.js'

export interface SeededOrg { orgId: string, apiKey: string }

/** A database of its own on the server of `adminUrl` (dropped first if a previous run left it). */
export async function createWorkloadDatabase (adminUrl: string, name: string): Promise<{ url: string, drop: () => Promise<void> }> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name "${name}": lower-case letters, digits and _ only`)
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await adminQuery(adminUrl, `CREATE DATABASE ${name}`)
  return { url: databaseUrl(adminUrl, name), drop: () => adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}

/**
 * Migrates, seeds the workload's organizations with seedDataset (bulk, realistic: states, alerts and
 * offline units as ingestion would have left them), vacuums (so index-only scans behave as on a settled
 * production table) and creates one device API key per organization.
 */
export async function seedWorkload (url: string, w: Workload, rules: { offlineAfterMinutes: number, confirmMinutes: number }, log: (line: string) => void): Promise<SeededOrg[]> {
  const database = await createDatabase({ databaseUrl: url, dataDir: '.coldboard-bench' })
  try {
    await database.migrate()
    const t = performance.now()
    const res = await seedDataset(database.db, {
      orgs: w.orgs,
      units: w.units,
      hours: w.historyHours,
      intervalSeconds: w.historyIntervalSeconds,
      seed: w.seed,
      offlineAfterMinutes: rules.offlineAfterMinutes,
      confirmMinutes: rules.confirmMinutes,
      concurrency: 2
    }, systemClock)
    log(`seeded ${res.orgIds.length} orgs, ${res.readings.toLocaleString('en-US')} readings in ${(res.ms / 1000).toFixed(1)} s`)
    await database.db.execute(sql`vacuum (analyze)`)
    log(`vacuum (analyze) in ${((performance.now() - t - res.ms) / 1000).toFixed(1)} s`)
    const orgs = res.orgIds.map((orgId) => ({ orgId, ...generateApiKey() }))
    await database.db.insert(apiKeys).values(orgs.map((o) => ({ organizationId: o.orgId, name: 'workload simulator', hash: o.hash })))
    return orgs.map((o) => ({ orgId: o.orgId, apiKey: o.key }))
  } finally {
    await database.close()
  }
}
