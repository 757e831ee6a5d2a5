import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { and, asc, eq, sql } from 'drizzle-orm'
import type { Config } from '../config.js'
import { apiKeys, devices, organizations, units } from '../db/schema.js'
import { generateApiKey, resolveJwtSecret } from '../features/auth/tokens.js'
import type { Db } from '../infra/postgres.js'
import type { Clock } from '../lib/clock.js'
import { startServer } from '../server.js'
import { seedDataset } from '../tools/dataset.js'
import { createLiveSimulator, type SimulatedDevice } from '../tools/live-simulator.js'
import { resolveDemoRedis } from '../tools/demo-redis.js'

export const DEMO_SLUG = 'demo'

/**
 * `demo [--port N] [--interval S] [--verbose]`: the embedded database in <DATA_DIR>/demo (apart from
 * `serve`'s), a seeded demo organization (once), the server with its worker and sweeper, and a live
 * simulator posting readings through the real ingestion endpoint. URLs and tokens on stdout.
 */
export async function demo (argv: string[], config: () => Config): Promise<void> {
  const args = parseDemoArgs(argv)
  const cfg = config()
  const log = (line: string) => process.stderr.write(line + '\n')
  if (cfg.DATABASE_URL) log('demo: uses its own embedded database; DATABASE_URL is ignored')
  // The JWT secret stays in the main data folder, so `coldboard token` signs tokens this server accepts.
  const jwtSecret = resolveJwtSecret(cfg.JWT_SECRET, cfg.DATA_DIR, (file) => log(`demo: generated a JWT secret in ${file}`))
  // A Redis Cluster or Sentinel is used as configured; a single Redis URL is probed first.
  const configuredUrl = cfg.redis && 'url' in cfg.redis ? cfg.redis.url : null
  const redis = cfg.redis && !configuredUrl ? { kind: 'target' as const } : await resolveDemoRedis(configuredUrl, cfg.redis?.password)
  if (redis.kind === 'none') log(`demo: running without the Redis cache (${redis.reason}); dashboards come straight from the database`)
  if (redis.kind === 'private') log(`demo: no Redis at ${configuredUrl}; started a private redis-server at ${redis.url}`)
  const demoConfig: Config = {
    ...cfg,
    DATABASE_URL: undefined,
    DATA_DIR: path.join(cfg.DATA_DIR, 'demo'),
    JWT_SECRET: jwtSecret,
    REDIS_DISABLED: redis.kind === 'none',
    redis: redis.kind === 'none' ? null : redis.kind === 'target' ? cfg.redis : { url: redis.url, ...(redis.kind === 'configured' && cfg.redis?.password ? { password: cfg.redis.password } : {}) }
  }

  const { app, beforeClose } = await startServer({
    config: demoConfig,
    port: args.port ?? cfg.PORT,
    worker: true,
    sweeper: true,
    // stdout is for the URLs and tokens; the server logs go to stderr, quiet unless asked.
    logger: { level: args.verbose ? cfg.LOG_LEVEL : 'warn', stream: process.stderr, redact: ['req.headers.authorization', 'req.headers["x-api-key"]'] }
  })
  const port = (app.server.address() as AddressInfo).port

  const orgId = await ensureDemoOrganization(app.db, app.clock, demoConfig, log)
  const { key, hash } = generateApiKey()
  await app.db.insert(apiKeys).values({ organizationId: orgId, name: 'demo simulator', hash })
  const fleet = await demoDevices(app.db, orgId)
  // The unit that has been silent longest stays silent: the dashboard always shows one offline unit.
  const silent = fleet[0]
  const simulator = createLiveSimulator({
    baseUrl: `http://127.0.0.1:${port}`,
    apiKey: key,
    devices: fleet,
    silent: new Set(silent ? [silent.deviceEui] : []),
    intervalMs: args.intervalSeconds * 1000,
    confirmMinutes: demoConfig.CONFIRM_MINUTES,
    clock: app.clock,
    log
  })
  // close-with-grace (startServer) closes the app on SIGINT/SIGTERM; the simulator, a client of it, stops first.
  beforeClose(() => simulator.stop())
  simulator.start()

  const ttl = 24 * 3600_000
  const viewer = app.tokens.sign({ sub: 'demo-viewer', orgs: { [orgId]: 'viewer' } }, ttl)
  const manager = app.tokens.sign({ sub: 'demo-manager', orgs: { [orgId]: 'manager' } }, ttl)
  const base = `http://localhost:${port}`
  process.stdout.write([
    `coldboard demo running (embedded database in ${path.resolve(demoConfig.DATA_DIR)}, ${redis.kind === 'none' ? 'no cache' : `Redis cache at ${redis.kind === 'target' ? 'the configured cluster or sentinels' : redis.url}`}; Ctrl-C to stop)`,
    'open the dashboard (signed in as a manager of the demo organization):',
    `dashboard: ${base}/#token=${manager}&org=${orgId}`,
    `api docs: ${base}/docs`,
    `dashboard api: ${base}/api/orgs/${orgId}/dashboard`,
    `health: ${base}/health`,
    `organization: ${orgId}`,
    `viewer token: ${viewer}`,
    `manager token: ${manager}`,
    `api key: ${key}`,
    `simulator: ${fleet.length - (silent ? 1 : 0)} devices every ${args.intervalSeconds} s${silent ? `, ${silent.unitName} left offline` : ''}`,
    'try:',
    `  curl -s -H "Authorization: Bearer ${viewer}" ${base}/api/orgs/${orgId}/dashboard`,
    ''
  ].join('\n'))
}

export function parseDemoArgs (argv: string[]): { port?: number, intervalSeconds: number, verbose: boolean } {
  let values: { port?: string, interval?: string, verbose?: boolean }
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: { port: { type: 'string' }, interval: { type: 'string', default: '5' }, verbose: { type: 'boolean', default: false } }
    }).values
  } catch (err) {
    throw new Error(`demo: ${(err as Error).message}`)
  }
  const port = values.port === undefined ? undefined : Number(values.port)
  if (port !== undefined && (!/^\d+$/.test(values.port!) || port > 65535)) throw new Error(`demo: --port must be a port number, got "${values.port}"`)
  const interval = Number(values.interval)
  if (!/^\d+$/.test(values.interval ?? '') || interval < 1 || interval > 3600) {
    throw new Error(`demo: --interval must be a number of seconds from 1 to 3600, got "${values.interval}"`)
  }
  return { port, intervalSeconds: interval, verbose: values.verbose ?? false }
}

/** The demo organization (slug 'demo'), seeded on the first run only: 12 units on 2 sites, 24 h every 5 minutes. */
async function ensureDemoOrganization (db: Db, clock: Clock, cfg: Config, log: (line: string) => void): Promise<string> {
  const [existing] = await db.select({ id: organizations.id }).from(organizations).where(eq(organizations.slug, DEMO_SLUG))
  if (existing) {
    log(`demo: reusing the demo organization ${existing.id}`)
    return existing.id
  }
  const res = await seedDataset(db, {
    orgs: 1,
    units: 12,
    sites: 2,
    hours: 24,
    intervalSeconds: 300,
    offlineAfterMinutes: cfg.OFFLINE_AFTER_MINUTES,
    confirmMinutes: cfg.CONFIRM_MINUTES,
    organizations: [{ name: 'Demo Kitchens', slug: DEMO_SLUG }]
  }, clock)
  log(`demo: seeded the demo organization: 12 units, ${res.readings} readings in ${res.ms} ms`)
  return res.orgIds[0]!
}

/** Active units with their devices, the longest-silent first. */
async function demoDevices (db: Db, orgId: string): Promise<SimulatedDevice[]> {
  return db.select({
    deviceEui: devices.deviceEui,
    unitName: units.name,
    unitType: units.unitType,
    tempMin: units.tempMin,
    tempMax: units.tempMax,
    state: units.state
  }).from(devices).innerJoin(units, eq(units.id, devices.unitId))
    .where(and(eq(devices.organizationId, orgId), eq(units.isActive, true)))
    .orderBy(sql`${devices.lastSeenAt} ASC NULLS FIRST`, asc(units.name))
}
