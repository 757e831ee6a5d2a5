import { parseArgs } from 'node:util'
import { eq } from 'drizzle-orm'
import type { Config } from '../config.js'
import { apiKeys, organizations } from '../db/schema.js'
import { createDatabase } from '../infra/postgres.js'
import { generateApiKey } from '../features/auth/tokens.js'

/** `api-key create --org <id> [--name n]`: stores the hash, prints the key once. */
export async function apiKey (argv: string[], config: () => Config): Promise<void> {
  const [sub, ...rest] = argv
  if (sub !== 'create') throw new Error('api-key: usage: coldboard api-key create --org <id> [--name n]')
  const { values } = parseArgs({ args: rest, options: { org: { type: 'string' }, name: { type: 'string', default: 'default' } } })
  if (!values.org) throw new Error('api-key create: --org <id> is required')
  const cfg = config()
  const database = await createDatabase({ databaseUrl: cfg.DATABASE_URL, dataDir: cfg.DATA_DIR })
  try {
    await database.migrate()
    const org = /^[0-9a-f-]{36}$/i.test(values.org)
      ? (await database.db.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, values.org)))[0]
      : undefined
    if (!org) throw new Error(`api-key create: no organization ${values.org}`)
    const { key, hash } = generateApiKey()
    await database.db.insert(apiKeys).values({ organizationId: org.id, name: values.name ?? 'default', hash })
    process.stdout.write(key + '\n')
  } finally {
    await database.close()
  }
}
