import { parseArgs } from 'node:util'
import { durationMs, type Config } from '../config.js'
import { createTokenService, resolveJwtSecret, roles, type Role } from '../features/auth/tokens.js'

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Prints a JWT for `--org <id>[:role]` (repeatable), signed with the same secret the server uses. */
export async function token (argv: string[], config: () => Config): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      org: { type: 'string', multiple: true, default: [] },
      admin: { type: 'boolean', default: false },
      ttl: { type: 'string', default: '12h' },
      sub: { type: 'string', default: 'cli' }
    }
  })
  const orgs = parseOrgs(values.org ?? [])
  if (Object.keys(orgs).length === 0 && !values.admin) throw new Error('token: give at least one --org <id>[:role] or --admin')
  const cfg = config()
  const secret = resolveJwtSecret(cfg.JWT_SECRET, cfg.DATA_DIR, (file) => process.stderr.write(`generated a JWT secret in ${file}\n`))
  const ttlMs = durationMs(values.ttl ?? '12h')
  if (ttlMs > cfg.tokenMaxTtlMs) throw new Error(`token: --ttl ${values.ttl} is longer than TOKEN_MAX_TTL (${cfg.TOKEN_MAX_TTL})`)
  process.stdout.write(createTokenService(secret, { maxTtlMs: cfg.tokenMaxTtlMs }).sign({ sub: values.sub ?? 'cli', orgs, admin: values.admin }, ttlMs) + '\n')
}

export function parseOrgs (specs: string[]): Record<string, Role> {
  const orgs: Record<string, Role> = {}
  for (const spec of specs) {
    const [id = '', role = 'viewer'] = spec.split(':')
    if (!uuidRe.test(id)) throw new Error(`--org: not an organization id: "${id}"`)
    if (!roles.includes(role as Role)) throw new Error(`--org: unknown role "${role}" (viewer, manager or owner)`)
    orgs[id.toLowerCase()] = role as Role
  }
  return orgs
}
