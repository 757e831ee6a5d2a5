import Fastify, { type FastifyBaseLogger, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Config } from './config.js'
import type { Clock } from './lib/clock.js'
import { systemClock } from './lib/clock.js'
import { createDatabase, type Database, type Db } from './infra/postgres.js'
import { createMetrics, type Metrics } from './infra/metrics.js'
import redisPlugin from './infra/redis.js'
import httpPlugin from './http/index.js'
import { clientErrorHandler, frameworkErrors } from './http/framework-errors.js'
import { resolveJwtSecret } from './features/auth/tokens.js'
import authPlugin from './features/auth/index.js'
import cachePlugin from './features/cache/index.js'
import dashboardPlugin from './features/dashboard/index.js'
import realtimePlugin from './features/realtime/index.js'
import changesPlugin from './features/changes/index.js'
import monitoringPlugin from './features/monitoring/index.js'
import rollupsPlugin from './features/rollups/index.js'
import maintenancePlugin from './features/maintenance/index.js'
import queuePlugin from './features/queue/index.js'
import evaluationPlugin from './features/evaluation/index.js'
import managementPlugin from './features/management/index.js'
import alertsPlugin from './features/alerts/index.js'
import ingestionPlugin from './features/ingestion/index.js'
import reportsPlugin from './features/reports/index.js'
import healthPlugin from './features/health/index.js'
import webPlugin from './features/web/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    clock: Clock
    database: Database
    db: Db
    metrics: Metrics
  }
}

export interface BuildOptions {
  config: Config
  /** A database to share (tests, the demo); otherwise one is created from the config and closed with the app. */
  database?: Database
  clock?: Clock
  logger?: FastifyServerOptions['logger'] | FastifyBaseLogger
  /** Run the queue worker and the sweeper in this process (serve without --no-worker). */
  worker?: boolean
  /** The local sweep timer; tests sweep by hand with the injectable clock. */
  sweeper?: boolean
}

/**
 * The Fastify app, in one explicit ordered list: core, HTTP, infrastructure, the read side, the write path,
 * then the features that change things. docs/architecture.md traces a reading and a dashboard read through it.
 */
export async function buildApp (opts: BuildOptions) {
  const { config } = opts
  const loggerOpts = opts.logger ?? { level: config.LOG_LEVEL, redact: ['req.headers.authorization', 'req.headers["x-api-key"]'] }
  const app = Fastify({
    ...(isLogger(loggerOpts) ? { loggerInstance: loggerOpts } : { logger: loggerOpts }),
    bodyLimit: 1024 * 1024,
    // A hop count is valid (proxy-addr); Fastify's types leave numbers out.
    trustProxy: config.trustProxy as boolean | string[],
    // Errors raised before a route runs get the same error body as the rest (src/http/framework-errors.ts).
    frameworkErrors,
    clientErrorHandler
  }).withTypeProvider<TypeBoxTypeProvider>()

  const ownsDatabase = !opts.database
  const database = opts.database ?? await createDatabase({
    databaseUrl: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolMax: config.PG_POOL_MAX,
    acquireTimeoutMs: config.PG_ACQUIRE_TIMEOUT_MS,
    statementTimeoutMs: config.PG_STATEMENT_TIMEOUT_MS
  })
  const jwtSecret = resolveJwtSecret(config.JWT_SECRET, config.DATA_DIR, (file) =>
    app.log.warn({ file }, 'JWT_SECRET not set: generated a random secret and stored it (set JWT_SECRET in production)'))

  // 1. Core: configuration, clock, database, metrics, the error map.
  await app.register(fp(async (core) => {
    core.decorate('config', config)
    core.decorate('clock', opts.clock ?? systemClock)
    core.decorate('database', database)
    core.decorate('db', database.db)
    core.decorate('metrics', createMetrics(undefined, { defaultMetrics: true }))
    core.addHook('onClose', async () => { if (ownsDatabase) await database.close() })
  }, { name: 'core' }))

  // 2. HTTP: validation, the JSON parser, the error map, security headers, CORS, the OpenAPI document.
  await app.register(httpPlugin, { corsOrigins: config.corsOrigins })

  // 3. Infrastructure: the Redis connections, authentication (its failure counters are in Redis), the generic cache.
  await app.register(redisPlugin)
  await app.register(authPlugin, { jwtSecret })
  await app.register(cachePlugin)

  // 4. The read side and the fan-out: cached dashboard reads, Socket.io.
  await app.register(dashboardPlugin)
  await app.register(realtimePlugin)

  // 5. The write path. Every change commits, then invalidates what it changed, then is emitted — in that
  //    order, for every writer below (src/features/changes/pipeline.ts).
  await app.register(changesPlugin, {
    invalidate: (publication) => app.dashboard.readThrough.invalidate(publication),
    emit: (event) => app.realtime.emit(event)
  })

  // 6. What changes things: the state machine and alert lifecycle, rollup rebuilds, partitions and retention,
  //    evaluation (queue, else inline; the workers, the sweep and maintenance), management, alert actions,
  //    ingestion. Then reports, health, the page.
  await app.register(monitoringPlugin)
  await app.register(rollupsPlugin)
  await app.register(maintenancePlugin)
  await app.register(queuePlugin)
  await app.register(evaluationPlugin, { worker: opts.worker ?? false, sweeper: opts.sweeper ?? false })
  await app.register(managementPlugin)
  await app.register(alertsPlugin)
  await app.register(ingestionPlugin)
  await app.register(reportsPlugin)
  await app.register(healthPlugin)
  await app.register(webPlugin)

  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>

function isLogger (l: unknown): l is FastifyBaseLogger {
  return typeof l === 'object' && l !== null && typeof (l as FastifyBaseLogger).child === 'function'
}
