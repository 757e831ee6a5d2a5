import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { parse } from 'yaml'
import { describe, expect, it } from 'vitest'
import { envSchema, loadConfig } from '../../src/config.js'

// No Docker engine runs here: the compose file is parsed and every wire of it is checked against the
// code and the other deployment files (nginx, Prometheus, Grafana, .env.example).

const root = path.resolve(import.meta.dirname, '../..')
const deployDir = path.join(root, 'deploy')
const read = (file: string) => readFileSync(path.join(root, file), 'utf8')

interface Service {
  image?: string
  build?: { context: string, dockerfile: string }
  command?: string[]
  environment?: Record<string, string>
  healthcheck?: { test: string[] }
  depends_on?: Record<string, { condition: string }>
  ports?: string[]
  volumes?: string[]
}
const compose = parse(read('deploy/docker-compose.yml'), { merge: true }) as { services: Record<string, Service>, volumes: Record<string, unknown> }
const services = compose.services
const coldboardServices = ['migrate', 'api1', 'api2', 'worker']
const service = (name: string): Service => {
  const s = services[name]
  if (!s) throw new Error(`deploy/docker-compose.yml has no service "${name}"`)
  return s
}

/** Variable names assigned or commented out (`# NAME=`) in an env file. */
function documentedVars (file: string): Set<string> {
  return new Set([...read(file).matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!))
}

/** Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$. */
function interpolate (value: string, vars: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g, (all, name?: string, colon?: string, op?: string, arg?: string) => {
    if (all === '$$') return '$'
    const v = vars[name!]
    const missing = v === undefined || (colon === ':' && v === '')
    if (!missing) return v
    if (op === '?') throw new Error(`required variable ${name} is missing: ${arg}`)
    return op === '-' ? arg ?? '' : ''
  })
}
const interpolatedNames = (value: string) => [...value.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!)

/** A coldboard service's environment as its container would see it, with the compose defaults. */
const secrets = { JWT_SECRET: 'x'.repeat(40), POSTGRES_PASSWORD: 'pg-secret', REDIS_PASSWORD: 'redis-secret', GRAFANA_ADMIN_PASSWORD: 'grafana-secret' }
function resolvedEnv (name: string, vars: Record<string, string> = secrets): Record<string, string> {
  return Object.fromEntries(Object.entries(service(name).environment ?? {}).map(([k, v]) => [k, interpolate(String(v), vars)]))
}

describe('deploy/docker-compose.yml', () => {
  it('has the database, Redis, the migration, two API instances, a worker, the load balancer and monitoring', () => {
    expect(Object.keys(services).sort()).toEqual(['api1', 'api2', 'grafana', 'lb', 'migrate', 'postgres', 'prometheus', 'redis', 'worker'])
    expect(service('postgres').image).toBe('postgres:15')
    expect(service('redis').image).toBe('redis:7')
    expect(service('lb').image).toMatch(/^nginx:/)
  })

  it('runs every coldboard process from the image of deploy/Dockerfile with the role its name says', async () => {
    for (const name of coldboardServices) {
      const build = service(name).build
      expect(build, name).toBeDefined()
      expect(path.resolve(deployDir, build!.context)).toBe(root)
      expect(existsSync(path.join(root, build!.dockerfile))).toBe(true)
    }
    expect(service('api1').command).toEqual(['serve', '--no-worker'])
    expect(service('api2').command).toEqual(['serve', '--no-worker'])
    expect(service('worker').command).toEqual(['worker'])
    expect(service('migrate').command).toEqual(['migrate'])
    expect(service('migrate')).toMatchObject({ restart: 'no' })
    // The commands and the flag exist in the CLI the image runs.
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(root, 'bin/coldboard.js'), '--help'], { cwd: root })
    expect(stdout).toMatch(/^\s+serve\b.*--no-worker/m)
    expect(stdout).toMatch(/^\s+worker\s/m)
    expect(stdout).toMatch(/^\s+migrate\s/m)
  })

  it('passes coldboard only variables that src/config.ts reads and .env.example documents', () => {
    const schemaKeys = new Set(Object.keys(envSchema.shape))
    const documented = documentedVars('.env.example')
    for (const name of coldboardServices) {
      const keys = Object.keys(service(name).environment ?? {})
      expect(keys, name).toEqual(expect.arrayContaining(['DATABASE_URL', 'REDIS_URL', 'JWT_SECRET', 'CACHE_TTL_SECONDS', 'PORT', 'NODE_ENV']))
      for (const key of keys) {
        expect(schemaKeys.has(key), `${name}: ${key} is not read by src/config.ts`).toBe(true)
        expect(documented.has(key), `${name}: ${key} is not in .env.example`).toBe(true)
      }
    }
  })

  it('documents every variable it interpolates in deploy/.env.example, and refuses to start without any of its secrets', () => {
    const text = read('deploy/docker-compose.yml')
    const documented = documentedVars('deploy/.env.example')
    const used = new Set(interpolatedNames(text.replace(/^\s*#.*$/gm, '')))
    for (const name of used) expect(documented.has(name), `\${${name}} is not in deploy/.env.example`).toBe(true)
    // Every secret is required (no default), and deploy/.env.example ships none of them filled in.
    const example = read('deploy/.env.example')
    for (const secret of Object.keys(secrets)) {
      expect(text, secret).toMatch(new RegExp(`\\$\\{${secret}:\\?`))
      expect(text, `${secret} has a default`).not.toMatch(new RegExp(`\\$\\{${secret}:?-`))
      expect(example, `${secret} is filled in deploy/.env.example`).toMatch(new RegExp(`^${secret}=$`, 'm'))
      const without = { ...secrets, [secret]: '' }
      const everyService = () => Object.values(services).map((svc) => interpolate(JSON.stringify(svc), without))
      expect(everyService, secret).toThrow(new RegExp(secret))
    }
  })

  it('publishes nothing but the load balancer; Prometheus without its lifecycle API; Redis with a password', () => {
    for (const [name, svc] of Object.entries(services)) {
      if (name === 'lb') expect(svc.ports?.map((p) => interpolate(p, {}))).toEqual(['8080:80'])
      else expect(svc.ports, `${name} is published`).toBeUndefined()
    }
    expect(service('prometheus').command!.join(' ')).not.toMatch(/enable-lifecycle|enable-admin-api/)
    const redisCommand = service('redis').command!.map((c) => interpolate(c, secrets))
    expect(redisCommand.slice(redisCommand.indexOf('--requirepass'))).toEqual(['--requirepass', secrets.REDIS_PASSWORD])
    // The operator's overlay publishes Prometheus and Grafana on the loopback interface only.
    const ops = parse(read('deploy/docker-compose.ops.yml')) as { services: Record<string, Service> }
    for (const svc of Object.values(ops.services)) for (const p of svc.ports ?? []) expect(p).toMatch(/^127\.0\.0\.1:/)
  })

  it('gives every coldboard process a configuration that loads in production and points at the compose services', () => {
    const pg = service('postgres').environment!
    for (const name of coldboardServices) {
      const env = resolvedEnv(name)
      const config = loadConfig(env)
      expect(config.NODE_ENV).toBe('production')
      const db = new URL(config.DATABASE_URL!)
      expect([db.hostname, db.port, db.username, db.pathname]).toEqual(['postgres', '5432', pg.POSTGRES_USER, `/${pg.POSTGRES_DB}`])
      expect(db.password).toBe(interpolate(pg.POSTGRES_PASSWORD!, secrets))
      expect(config.redis).toEqual({ url: `redis://:${secrets.REDIS_PASSWORD}@redis:6379` })
      expect(config.PORT).toBe(3000)
      expect(config.HOST).toBe('0.0.0.0')
      // One key prefix for the whole deployment: the instances share entries, fences, channels and the queue.
      expect(config.REDIS_KEY_PREFIX).toBe('coldboard:')
      expect(config.queuePrefix).toBe('coldboard:bull')
    }
    // One JWT secret, one database, one Redis and one key prefix for all of them (docs/caching.md, several instances).
    const envs = coldboardServices.map((name) => JSON.stringify(resolvedEnv(name)))
    expect(new Set(envs).size).toBe(1)
  })

  it('starts coldboard only on a healthy database and Redis, after the migration succeeded', () => {
    for (const name of ['api1', 'api2', 'worker']) {
      expect(service(name).depends_on).toEqual({
        postgres: { condition: 'service_healthy' },
        redis: { condition: 'service_healthy' },
        migrate: { condition: 'service_completed_successfully' }
      })
    }
    expect(service('migrate').depends_on).toEqual({ postgres: { condition: 'service_healthy' } })
    expect(service('lb').depends_on).toMatchObject({ api1: { condition: 'service_healthy' }, api2: { condition: 'service_healthy' } })
    // Waiting for "healthy" needs a health check on the service waited for.
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        if (condition === 'service_healthy') expect(service(dep).healthcheck, `${name} waits for ${dep}`).toBeDefined()
      }
    }
  })

  it('checks health where each process answers it', () => {
    expect(service('postgres').healthcheck!.test.join(' ')).toMatch(/pg_isready -U coldboard -d coldboard/)
    expect(service('redis').healthcheck!.test).toEqual(['CMD', 'redis-cli', 'ping'])
    for (const name of ['api1', 'api2', 'worker']) {
      const port = resolvedEnv(name).PORT
      const probe = service(name).healthcheck!.test.join(' ')
      expect(probe, name).toContain(`http://127.0.0.1:${port}/health/ready`)
      expect(probe).toMatch(/process\.exit\(r\.ok \? 0 : 1\)/)
    }
    // The image's own HEALTHCHECK probes the same path.
    expect(read('deploy/Dockerfile')).toMatch(/HEALTHCHECK[\s\S]*\/health\/ready/)
  })

  it('runs Redis with maxmemory-policy noeviction (BullMQ) and keeps its data', () => {
    const command = service('redis').command!
    expect(command[0]).toBe('redis-server')
    expect(command[command.indexOf('--maxmemory-policy') + 1]).toBe('noeviction')
    expect(service('redis').volumes).toEqual(['redisdata:/data'])
    expect(Object.keys(compose.volumes)).toEqual(expect.arrayContaining(['pgdata', 'redisdata']))
  })

  it('mounts only files that exist in deploy/', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const volume of s.volumes ?? []) {
        const source = volume.split(':')[0]!
        if (source.startsWith('.')) expect(existsSync(path.resolve(deployDir, source)), `${name}: ${source}`).toBe(true)
        else expect(Object.keys(compose.volumes), `${name}: volume ${source}`).toContain(source)
      }
    }
  })
})

describe('the load balancer (deploy/nginx/coldboard.conf)', () => {
  const conf = read('deploy/nginx/coldboard.conf').replace(/#.*$/gm, '')
  const upstreams = new Map([...conf.matchAll(/upstream\s+(\S+)\s*\{([^}]*)\}/g)].map((m) => [m[1]!, m[2]!]))
  const location = (prefix: string) => conf.match(new RegExp(`location\\s+${prefix.replace(/[/.]/g, '\\$&')}\\s*\\{([^}]*)\\}`))?.[1] ?? ''
  const apiPort = () => resolvedEnv('api1').PORT

  it('is what the lb service mounts as nginx configuration', () => {
    expect(service('lb').volumes).toContain('./nginx/coldboard.conf:/etc/nginx/conf.d/default.conf:ro')
  })

  it('sends every request to api1 and api2 on their PORT', () => {
    expect(upstreams.size).toBeGreaterThan(0)
    for (const [name, body] of upstreams) {
      const servers = [...body.matchAll(/^\s*server\s+([^\s;]+)/gm)].map((m) => m[1])
      expect(servers.sort(), name).toEqual([`api1:${apiPort()}`, `api2:${apiPort()}`])
    }
    const passes = [...conf.matchAll(/proxy_pass\s+http:\/\/([^;/\s]+)/g)].map((m) => m[1]!)
    for (const target of passes) expect(upstreams.has(target), target).toBe(true)
  })

  it('keeps each Socket.io session on one instance and upgrades its WebSocket', () => {
    const socket = location('/socket.io/')
    const target = socket.match(/proxy_pass\s+http:\/\/([^;/\s]+)/)?.[1]
    expect(target).toBeDefined()
    expect(upstreams.get(target!)).toMatch(/^\s*(ip_hash|hash \$remote_addr consistent|sticky cookie .*);/m)
    expect(socket).toMatch(/proxy_http_version 1\.1;/)
    expect(socket).toMatch(/proxy_set_header Upgrade \$http_upgrade;/)
    expect(socket).toMatch(/proxy_set_header Connection \$connection_upgrade;/)
    expect(conf).toMatch(/map \$http_upgrade \$connection_upgrade \{\s*default\s+upgrade;\s*''\s+close;\s*\}/)
  })

  it('overwrites X-Forwarded-For in every proxied location (coldboard trusts it for rate limits)', () => {
    const locations = [...conf.matchAll(/location\s+([^{]+)\{([^}]*)\}/g)].filter((m) => m[2]!.includes('proxy_pass'))
    expect(locations.length).toBeGreaterThanOrEqual(2)
    for (const [, where, body] of locations) {
      expect(body, where).toMatch(/proxy_set_header X-Forwarded-For \$remote_addr;/)
      expect(body, where).toMatch(/proxy_set_header Host \$host;/)
    }
    // …and the instances believe exactly that one hop (TRUST_PROXY), nobody else's header.
    expect(read('src/app.ts')).toMatch(/trustProxy: config\.trustProxy/)
    expect(read('deploy/docker-compose.yml')).toMatch(/TRUST_PROXY: \$\{TRUST_PROXY:-1\}/)
  })
})

describe('Prometheus and Grafana wiring', () => {
  const promConfig = parse(read('deploy/prometheus/prometheus.yml')) as {
    rule_files: string[]
    scrape_configs: Array<{ job_name: string, metrics_path?: string, static_configs: Array<{ targets: string[] }> }>
  }

  it('scrapes /metrics of api1, api2 and worker on their PORT, and loads the alert rules it mounts', () => {
    const job = promConfig.scrape_configs.find((j) => j.job_name === 'coldboard')
    expect(job?.metrics_path ?? '/metrics').toBe('/metrics')
    const targets = job!.static_configs.flatMap((c) => c.targets).sort()
    expect(targets).toEqual(['api1', 'api2', 'worker'].map((name) => `${name}:${resolvedEnv(name).PORT}`))
    const mounts = service('prometheus').volumes!
    expect(mounts).toContain('./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro')
    const alertsMount = mounts.find((v) => v.startsWith('./prometheus/alerts.yml:'))!.split(':')[1]
    expect(promConfig.rule_files).toEqual([alertsMount])
    expect(service('prometheus').command).toContain('--config.file=/etc/prometheus/prometheus.yml')
  })

  it('provisions Grafana with that Prometheus and the dashboard folder it mounts', () => {
    const datasources = parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')) as { datasources: Array<{ uid: string, url: string, type: string }> }
    const providers = parse(read('deploy/grafana/provisioning/dashboards/coldboard.yml')) as { providers: Array<{ options: { path: string } }> }
    expect(datasources.datasources).toEqual([expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090' })])
    const mounts = service('grafana').volumes!
    expect(mounts).toContain('./grafana/provisioning:/etc/grafana/provisioning:ro')
    expect(mounts).toContain(`./grafana/dashboards:${providers.providers[0]!.options.path}:ro`)
    expect(existsSync(path.join(deployDir, 'grafana/dashboards/coldboard-cache.json'))).toBe(true)
  })
})
