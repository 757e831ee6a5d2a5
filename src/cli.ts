import { parseArgs } from 'node:util'
import { ConfigError, loadConfig, type Config } from './config.js'

const usage = `usage: coldboard <command> [options]

commands:
  serve [--port N] [--no-worker]   API + Socket.io (+ queue worker and sweeper unless --no-worker)
  worker                           queue worker and offline sweeper only
  migrate                          apply database migrations (DATABASE_URL, or the embedded database)
  seed --orgs N --units M --hours H --interval-seconds S [--sites K] [--seed n]
                                   write a realistic dataset, print the organization ids
  maintain                         create partitions ahead, apply retention; prints what it created and dropped
  rollups rebuild [--org ID] [--from ISO] [--to ISO]
                                   recompute rollups from raw readings (idempotent)
  token --org <id>[:role] ... [--admin] [--ttl 12h] [--sub name]
                                   print a JWT (role: viewer | manager | owner, default viewer)
  api-key create --org <id> [--name n]
                                   print a new device API key (shown once)
  api-key list --org <id>          the organization's keys: id, created, active or revoked, name
  api-key revoke --org <id> <key-id>
                                   revoke a key (refused from the next request on)
  demo [--port N] [--interval S] [--verbose]
                                   embedded database, seeded demo organization, live simulated readings
  simulate [flags]                 drive coldboard like real clients: W1 by default (coldboard simulate --help)
  bench [--out DIR] [--smoke] [--update-docs]
                                   W1 with the cache on and off + micro-benchmarks; report.json and report.md
`

type Handler = (argv: string[], config: () => Config) => Promise<void>

const commands: Record<string, () => Promise<Handler>> = {
  serve: async () => (await import('./commands/serve.js')).serve,
  worker: async () => (await import('./commands/serve.js')).worker,
  migrate: async () => (await import('./commands/migrate.js')).migrate,
  seed: async () => (await import('./commands/seed.js')).seed,
  maintain: async () => (await import('./commands/maintain.js')).maintain,
  rollups: async () => (await import('./commands/rollups.js')).rollups,
  token: async () => (await import('./commands/token.js')).token,
  'api-key': async () => (await import('./commands/api-key.js')).apiKey,
  demo: async () => (await import('./commands/demo.js')).demo,
  simulate: async () => (await import('./commands/simulate.js')).simulate,
  bench: async () => (await import('./commands/bench.js')).bench
}

async function main (): Promise<void> {
  const [name, ...rest] = process.argv.slice(2)
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage)
    return
  }
  const load = commands[name]
  if (!load) throw new Error(`unknown command "${name}" (see coldboard --help)`)
  const handler = await load()
  await handler(rest, () => loadConfig())
}

main().catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : (err as Error)?.message ?? String(err)
  process.stderr.write(`coldboard: ${message}\n`)
  process.exitCode = 1
})

export { parseArgs }
