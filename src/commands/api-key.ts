import { parseArgs } from 'node:util'
import type { Config } from '../config.js'
import { createApiKeyService } from '../features/auth/api-keys.js'
import { createDatabase } from '../infra/postgres.js'
import { systemClock } from '../lib/clock.js'

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const usage = 'api-key: usage: coldboard api-key create --org <id> [--name n] | list --org <id> | revoke --org <id> <key-id>'

/**
 * `api-key create --org <id> [--name n]` prints a new key once (stdout: the key only);
 * `api-key list --org <id>` prints one line per key (id, created, revoked or active, name), never a secret;
 * `api-key revoke --org <id> <key-id>` revokes one: refused from the next request on, on every instance.
 */
export async function apiKey (argv: string[], config: () => Config): Promise<void> {
  const [sub, ...rest] = argv
  if (sub !== 'create' && sub !== 'list' && sub !== 'revoke') throw new Error(usage)
  let parsed: { values: { org?: string, name?: string }, positionals: string[] }
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, strict: true, options: { org: { type: 'string' }, name: { type: 'string', default: 'default' } } })
  } catch (err) {
    throw new Error(`api-key ${sub}: ${(err as Error).message}`)
  }
  const { values, positionals } = parsed
  if (!values.org || !uuidRe.test(values.org)) throw new Error(`api-key ${sub}: --org <organization id> is required`)
  const orgId = values.org.toLowerCase()
  if (sub === 'revoke' && (positionals.length !== 1 || !uuidRe.test(positionals[0]!))) throw new Error(`api-key revoke: give the key id to revoke (coldboard api-key list --org ${orgId})`)
  if (sub !== 'revoke' && positionals.length > 0) throw new Error(`api-key ${sub}: unexpected argument "${positionals[0]}"`)
  const cfg = config()
  const database = await createDatabase({ databaseUrl: cfg.DATABASE_URL, dataDir: cfg.DATA_DIR })
  try {
    await database.migrate()
    const keys = createApiKeyService({ db: database.db, clock: systemClock })
    const fail = (err: unknown): never => { throw new Error(`api-key ${sub}: ${(err as Error).message}${(err as { code?: string }).code === 'NOT_FOUND' ? ` (${orgId})` : ''}`) }
    if (sub === 'create') {
      const { key } = await keys.create(orgId, values.name ?? 'default').catch(fail)
      process.stdout.write(key + '\n')
    } else if (sub === 'list') {
      for (let cursor: string | undefined, more = true; more;) {
        const page = await keys.list(orgId, { limit: 1000, cursor }).catch(fail)
        for (const k of page.items) {
          process.stdout.write(`${k.id}\t${k.createdAt.toISOString()}\t${k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active'}\t${k.name}\n`)
        }
        cursor = page.next ?? undefined
        more = page.next !== null
      }
    } else {
      const k = await keys.revoke(orgId, positionals[0]!.toLowerCase()).catch(fail)
      process.stderr.write(`revoked ${k.id} (${k.name}) at ${k.revokedAt?.toISOString()}\n`)
    }
  } finally {
    await database.close()
  }
}
