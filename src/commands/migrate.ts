import type { Config } from '../config.js'
import { createDatabase } from '../infra/postgres.js'

export async function migrate (_argv: string[], config: () => Config): Promise<void> {
  const cfg = config()
  const database = await createDatabase({ databaseUrl: cfg.DATABASE_URL, dataDir: cfg.DATA_DIR })
  try {
    await database.migrate()
    process.stderr.write(`migrated ${database.kind === 'pg' ? 'PostgreSQL' : `embedded database at ${database.dataDir}`}\n`)
  } finally {
    await database.close()
  }
}
