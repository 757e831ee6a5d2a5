import { parseArgs } from 'node:util'
import type { Config } from '../config.js'
import { startServer } from '../server.js'

export async function serve (argv: string[], config: () => Config): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { port: { type: 'string' }, 'no-worker': { type: 'boolean', default: false } } })
  const cfg = config()
  const port = values.port === undefined ? cfg.PORT : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: not a port number: ${values.port}`)
  // The sweeper runs everywhere: idle while the queue's workers take jobs, it sweeps and reconciles here when Redis is
  // down or no worker takes jobs (src/features/evaluation/service.ts `localUpkeep`).
  await startServer({ config: cfg, port, worker: !values['no-worker'], sweeper: true })
}

/** The queue worker and the sweeper without the HTTP API (still answers /health on PORT). */
export async function worker (argv: string[], config: () => Config): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { port: { type: 'string' } } })
  const cfg = config()
  await startServer({ config: cfg, port: values.port === undefined ? cfg.PORT : Number(values.port), worker: true, sweeper: true })
}
