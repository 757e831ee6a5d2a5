import { z } from 'zod'

const bool = z.enum(['true', 'false', '1', '0', '']).transform((v) => v === 'true' || v === '1')
const intIn = (min: number, max: number) => z.coerce.number().int().min(min).max(max)
const hostPorts = z.string()
  .regex(/^\s*[^\s,:]+:\d{1,5}\s*(,\s*[^\s,:]+:\d{1,5}\s*)*$/, 'a comma-separated list of host:port')
  .refine((v) => v.split(',').every((hp) => { const port = Number(hp.trim().split(':')[1]); return port >= 1 && port <= 65535 }), 'ports from 1 to 65535')

export interface HostPort { host: string, port: number }
/**
 * Where Redis is: one server (a URL), a Redis Cluster (some of its nodes), or a primary found through Sentinel.
 * `password` (REDIS_PASSWORD) overrides a password in the URL.
 */
export type RedisTarget =
  | { url: string, password?: string }
  | { cluster: HostPort[], password?: string }
  | { sentinels: HostPort[], name: string, password?: string }

/** The one environment schema. Nobody else reads process.env. */
export const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  DATABASE_URL: z.string().url('must be a postgres:// URL').optional(),
  DATA_DIR: z.string().min(1).default('./.coldboard'),
  // PostgreSQL pool (pg only): its size, how long a query waits for a connection (then 503), the longest statement.
  PG_POOL_MAX: intIn(1, 1000).default(10),
  PG_ACQUIRE_TIMEOUT_MS: intIn(100, 600_000).default(5000),
  PG_STATEMENT_TIMEOUT_MS: intIn(0, 86_400_000).default(30_000),
  REDIS_URL: z.string().url('must be a redis:// URL').optional(),
  REDIS_HOST: z.string().min(1).default('127.0.0.1'),
  REDIS_PORT: intIn(1, 65535).default(6379),
  REDIS_DISABLED: bool.default(false),
  // Redis' AUTH password for every node (standalone, the Sentinel-managed primary and replicas, cluster nodes).
  REDIS_PASSWORD: z.string().min(1).optional(),
  // A Redis Cluster: some of its nodes (host:port, comma-separated); every connection becomes a cluster client.
  REDIS_CLUSTER_NODES: hostPorts.optional(),
  // Sentinel: the sentinels (host:port, comma-separated) and the name of the primary they monitor.
  REDIS_SENTINELS: hostPorts.optional(),
  REDIS_SENTINEL_NAME: z.string().min(1).max(128).optional(),
  REDIS_COMMAND_TIMEOUT_MS: intIn(10, 10_000).default(250),
  CACHE_TTL_SECONDS: intIn(1, 86_400).default(60),
  // Entries an event deleted are reloaded before the event is emitted, and entries read in the last quarter of
  // their TTL are reloaded in the background (docs/caching.md#refresh); false: plain cache-aside.
  CACHE_REFRESH: bool.default(true),
  // How long after COMMIT the emit waits at most for those reloads (a viewer still joins a reload in flight).
  CACHE_REFRESH_WAIT_MS: intIn(0, 1000).default(10),
  // In-process copies of Redis entries in front of the GET, dropped by every invalidation before its event reaches
  // this instance's sockets (docs/caching.md#in-process); one server or Sentinel only (off on a cluster).
  CACHE_LOCAL: bool.default(true),
  // The most entry bytes those copies hold per process; past it the organizations stored longest ago are dropped.
  CACHE_LOCAL_MAX_MB: intIn(1, 4096).default(64),
  // Every key and channel coldboard uses starts with it, so deployments sharing a Redis never meet.
  REDIS_KEY_PREFIX: z.string().max(64).regex(/^[A-Za-z0-9_:.-]*$/, 'letters, digits, _ : . and - only').default('coldboard:'),
  // BullMQ's prefix; derived from REDIS_KEY_PREFIX when unset (`coldboard:` → `coldboard:bull`).
  QUEUE_PREFIX: z.string().min(1).max(64).regex(/^[A-Za-z0-9_:.{}-]+$/, 'letters, digits, _ : . { } and - only').optional(),
  PORT: intIn(0, 65535).default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  OFFLINE_AFTER_MINUTES: intIn(1, 24 * 60).default(15),
  CONFIRM_MINUTES: intIn(1, 24 * 60).default(10),
  SWEEP_INTERVAL_SECONDS: intIn(1, 3600).default(30),
  // How often the worker looks for readings stored but never evaluated (a job out of retries), and re-evaluates them.
  RECONCILE_INTERVAL_SECONDS: intIn(5, 3600).default(60),
  // /health turns degraded when the oldest waiting evaluation job has waited longer than this.
  QUEUE_STALL_SECONDS: intIn(1, 86_400).default(60),
  CORS_ORIGINS: z.string().default(''),
  RATE_LIMIT_MAX: intIn(1, 10_000_000).default(600),
  TRUST_PROXY: z.string().regex(/^(true|false|\d+|[0-9a-fA-F:.,/ ]+)$/, 'true, false, a hop count or a comma-separated list of addresses/CIDRs').default('false'),
  AUTH_FAILURE_LIMIT: intIn(1, 1_000_000).default(30),
  // The longest a token may live (`coldboard token --ttl` and every token the server accepts): 30m, 12h, 30d…
  TOKEN_MAX_TTL: z.string().regex(/^\d+(ms|s|m|h|d)?$/, 'a duration such as 12h or 30d').default('30d'),
  // Raw readings are dropped a whole month partition at a time once every reading in it is older than this.
  READINGS_RETENTION_DAYS: intIn(1, 36_500).default(400),
  // Hourly and daily rollups older than this are deleted (at least READINGS_RETENTION_DAYS).
  ROLLUP_RETENTION_DAYS: intIn(1, 36_500).default(1100),
  // Compliance reports: statement timeout, and how many may run at once per organization on one instance.
  REPORT_STATEMENT_TIMEOUT_MS: intIn(100, 600_000).default(15_000),
  REPORT_CONCURRENCY_PER_ORG: intIn(1, 100).default(2)
})

export type Env = z.infer<typeof envSchema>

/** JWT secrets that appear in .env.example and the docs: refused in production. */
const SAMPLE_SECRETS = new Set(['change-me-to-a-long-random-string-of-32-chars-or-more'])

/** "12h", "30m", "45s", "7d", "250ms" or plain milliseconds. */
export function durationMs (text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim())
  if (!m) throw new Error(`invalid duration "${text}" (use e.g. 30m, 12h, 7d)`)
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 }[m[2] ?? 'ms'] ?? 1
  return Number(m[1]) * factor
}

export interface Config extends Env {
  corsOrigins: string[] | boolean
  /** Fastify's trustProxy: whose X-Forwarded-For to believe (client addresses drive rate limits). */
  trustProxy: boolean | number | string[]
  redis: RedisTarget | null
  /** BullMQ's prefix: QUEUE_PREFIX, else derived from REDIS_KEY_PREFIX (with a {hash tag} on a cluster). */
  queuePrefix: string
  tokenMaxTtlMs: number
}

export class ConfigError extends Error {
  constructor (readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

/** Validates the environment once; throws ConfigError with one line per wrong variable. */
export function loadConfig (env: Record<string, string | undefined> = process.env, overrides: Partial<Env> = {}): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  const parsed = envSchema.safeParse({ ...raw, ...overrides })
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`))
  }
  const cfg = parsed.data
  if (cfg.NODE_ENV === 'production' && !cfg.JWT_SECRET) {
    throw new ConfigError(['JWT_SECRET: required when NODE_ENV=production'])
  }
  if (cfg.NODE_ENV === 'production' && cfg.JWT_SECRET && SAMPLE_SECRETS.has(cfg.JWT_SECRET)) {
    throw new ConfigError(['JWT_SECRET: the sample value of .env.example; generate one (openssl rand -base64 48)'])
  }
  const tokenMaxTtlMs = durationMs(cfg.TOKEN_MAX_TTL)
  if (tokenMaxTtlMs < 60_000) throw new ConfigError(['TOKEN_MAX_TTL: at least a minute'])
  if (cfg.ROLLUP_RETENTION_DAYS < cfg.READINGS_RETENTION_DAYS) {
    throw new ConfigError([`ROLLUP_RETENTION_DAYS: must be at least READINGS_RETENTION_DAYS (${cfg.READINGS_RETENTION_DAYS})`])
  }
  const redis = redisTarget(cfg)
  const origins = cfg.CORS_ORIGINS.split(',').map((s) => s.trim()).filter(Boolean)
  const tp = cfg.TRUST_PROXY.trim()
  const trustProxy = tp === 'true' ? true : tp === 'false' ? false : /^\d+$/.test(tp) ? Number(tp) : tp.split(',').map((x) => x.trim()).filter(Boolean)
  return {
    ...cfg,
    trustProxy,
    corsOrigins: origins.length === 0 ? false : origins.includes('*') ? true : origins,
    redis,
    queuePrefix: queuePrefix(cfg, redis !== null && 'cluster' in redis),
    tokenMaxTtlMs
  }
}

const parseHostPorts = (list: string): HostPort[] => list.split(',').map((s) => s.trim()).filter(Boolean).map((hp) => {
  const i = hp.lastIndexOf(':')
  return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) }
})

function redisTarget (cfg: Env): RedisTarget | null {
  if (cfg.REDIS_DISABLED) return null
  const password = cfg.REDIS_PASSWORD ? { password: cfg.REDIS_PASSWORD } : {}
  if (cfg.REDIS_CLUSTER_NODES && cfg.REDIS_SENTINELS) throw new ConfigError(['REDIS_CLUSTER_NODES and REDIS_SENTINELS: set one of them'])
  if ((cfg.REDIS_CLUSTER_NODES || cfg.REDIS_SENTINELS) && cfg.REDIS_URL) {
    throw new ConfigError([`REDIS_URL: not with ${cfg.REDIS_CLUSTER_NODES ? 'REDIS_CLUSTER_NODES' : 'REDIS_SENTINELS'} (set one way to reach Redis)`])
  }
  if (cfg.REDIS_CLUSTER_NODES) return { cluster: parseHostPorts(cfg.REDIS_CLUSTER_NODES), ...password }
  if (cfg.REDIS_SENTINELS) {
    if (!cfg.REDIS_SENTINEL_NAME) throw new ConfigError(['REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the name the sentinels monitor)'])
    return { sentinels: parseHostPorts(cfg.REDIS_SENTINELS), name: cfg.REDIS_SENTINEL_NAME, ...password }
  }
  return { url: cfg.REDIS_URL ?? `redis://${cfg.REDIS_HOST}:${cfg.REDIS_PORT}`, ...password }
}

/**
 * BullMQ's Lua scripts touch several keys of a queue, which on a cluster must share a slot: there the prefix
 * carries a hash tag (`{coldboard:bull}`), and a QUEUE_PREFIX without one is refused.
 */
function queuePrefix (cfg: Env, cluster: boolean): string {
  if (cfg.QUEUE_PREFIX) {
    if (cluster && !/\{[^}]+\}/.test(cfg.QUEUE_PREFIX)) throw new ConfigError(['QUEUE_PREFIX: needs a {hash tag} on a Redis Cluster, e.g. {coldboard:bull}'])
    return cfg.QUEUE_PREFIX
  }
  const derived = `${cfg.REDIS_KEY_PREFIX}bull`.replace(/^:+/, '')
  return cluster ? `{${derived}}` : derived
}
