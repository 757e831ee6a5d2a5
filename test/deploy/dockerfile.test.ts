import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newPrefix } from '../helpers/fixture.js'
import { adminQuery, databaseUrl } from '../helpers/db.js'
import { freePort, sharedRedisUrl, waitFor } from '../helpers/redis.js'

// No Docker engine runs here: the Dockerfile is read, what the image relies on is checked in the
// repository (the build scripts, the dependencies its commands import), and the image's /app is rebuilt in a
// temporary folder the way the Dockerfile builds it (compiled dist/, production dependencies only, no src/,
// test/ or bench/) and its commands are run there.

const root = path.resolve(import.meta.dirname, '../..')
const read = (file: string) => readFileSync(path.join(root, file), 'utf8')
const dockerfile = read('deploy/Dockerfile')
const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>, dependencies: Record<string, string>, devDependencies: Record<string, string> }

/** Instructions of a stage, continuation lines joined. */
function stages (): string[][] {
  const lines = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  const out: string[][] = []
  for (const line of lines) {
    if (/^FROM\s/i.test(line)) out.push([])
    out.at(-1)?.push(line)
  }
  return out
}

/** The commands src/cli.ts dispatches to, with the module each loads (all of them are compiled into the image). */
function cliCommands (): Map<string, string> {
  const source = read('src/cli.ts')
  return new Map([...source.matchAll(/^\s*'?([a-z-]+)'?: async \(\) => \(await import\('\.\/commands\/([a-z-]+)\.js'\)\)/gm)].map((m) => [m[1]!, m[2]!]))
}

/** Package names imported at run time by a module and every relative module it imports, lazy imports included. */
function runtimeImports (entries: string[]): Map<string, string> {
  const found = new Map<string, string>()
  const seen = new Set<string>()
  const queue = [...entries]
  while (queue.length > 0) {
    const file = queue.pop()!
    if (seen.has(file)) continue
    seen.add(file)
    const source = readFileSync(file, 'utf8')
    const specifiers = [
      // `import type` is erased; `import { type A, b }` is not (verbatimModuleSyntax keeps the import).
      ...[...source.matchAll(/^\s*import\s+(?!type[\s{])[^'"]*?['"]([^'"]+)['"]/gm)].map((m) => m[1]!),
      ...[...source.matchAll(/^\s*export\s+(?!type[\s{])(?:\*|\{[^}]*\})\s*(?:as\s+\w+\s+)?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!),
      ...[...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!)
    ]
    for (const spec of specifiers) {
      if (spec.startsWith('.')) {
        const base = path.resolve(path.dirname(file), spec)
        const target = [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, path.join(base, 'index.ts')]
          .find((f) => statSync(f, { throwIfNoEntry: false })?.isFile())
        if (target && /\.[cm]?[jt]s$/.test(target)) queue.push(target)
      } else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) {
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!
        if (!found.has(name)) found.set(name, path.relative(root, file))
      }
    }
  }
  return found
}

describe('deploy/Dockerfile', () => {
  it('installs without scripts, builds dist/ and web/dist, then drops the dev dependencies and the sources', () => {
    const [build, runtime] = stages()
    expect(build![0]).toMatch(/^FROM node:20-slim\b/)
    expect(runtime![0]).toMatch(/^FROM node:20-slim$/)
    const steps = build!
    const index = (pattern: RegExp) => steps.findIndex((s) => pattern.test(s))
    // Order matters: the lock file alone, dependencies (without `prepare`, which would build sources not
    // copied yet), then the sources, the build, and the prune.
    const order = [
      /^COPY package\.json package-lock\.json \.\/$/,
      /^RUN npm ci --ignore-scripts\b/,
      /^COPY \. \.$/,
      /^RUN npm run build$/,
      /^RUN npm prune --omit=dev\b/
    ].map(index)
    expect(order.every((i) => i >= 0), JSON.stringify(order)).toBe(true)
    expect([...order].sort((a, b) => a - b)).toEqual(order)
    expect(pkg.scripts.prepare).toMatch(/npm run build/)
    const prune = steps[order.at(-1)!]!
    expect(prune).toMatch(/&& rm -rf src test bench\b/)
    // What stays is what the runtime stage copies: bin/, dist/, web/dist, package.json, node_modules.
    expect(prune).not.toMatch(/rm -rf[^&]*\b(dist|web|bin|node_modules)\b/)
    expect(runtime!.join('\n')).toMatch(/^COPY --from=build --chown=node:node \/app \/app$/m)
  })

  it('builds the server into dist/ and the page into web/dist with `npm run build`', () => {
    expect(pkg.scripts.build).toBe('npm run build:server && npm run build:web')
    expect(pkg.scripts['build:server']).toMatch(/^tsc -p tsconfig\.build\.json && node scripts\/copy-assets\.mjs$/)
    const tsconfig = JSON.parse(read('tsconfig.build.json')) as { compilerOptions: { rootDir: string, outDir: string, noEmit: boolean }, include: string[] }
    expect(tsconfig.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist', noEmit: false })
    expect(tsconfig.include).toEqual(['src'])
    expect(pkg.scripts['build:web']).toBe('vite build --config web/vite.config.ts')
    expect(read('web/vite.config.ts')).toMatch(/outDir: 'dist'/)
    // The compiler and vite are dev dependencies: `npm ci` installs them in the build stage, the prune drops them.
    for (const tool of ['typescript', 'vite', 'tsx']) expect(pkg.devDependencies, tool).toHaveProperty(tool)
  })

  it('runs the compiled CLI, bin/coldboard.js, as an unprivileged user, serve by default', () => {
    const runtime = stages()[1]!.join('\n')
    expect(runtime).toMatch(/^ENTRYPOINT \["node", "bin\/coldboard\.js"\]$/m)
    expect(runtime).toMatch(/^CMD \["serve"\]$/m)
    expect(runtime).toMatch(/^USER node$/m)
    expect(runtime).toMatch(/^ENV NODE_ENV=production/m)
    const bin = read('bin/coldboard.js')
    expect(bin).toMatch(/new URL\('\.\.\/dist\/cli\.js', import\.meta\.url\)/)
    // The launcher itself needs Node's built-ins only (tsx is a dev dependency now).
    expect([...bin.matchAll(/^\s*import\s[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1]).filter((spec) => !spec!.startsWith('node:'))).toEqual([])
  })

  it('keeps secrets, local state and local builds out of the build context', () => {
    const ignored = read('deploy/Dockerfile.dockerignore').split('\n').map((l) => l.trim())
    // A local dist/ could hold outputs of deleted sources (tsc never cleans): the image builds its own.
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', '.env', 'deploy/.env', '.coldboard', '.git', 'dist', 'web/dist']))
  })

  it('has every package its commands import at run time after `npm prune --omit=dev`', () => {
    // Every command of src/cli.ts is compiled into the image, so every one is followed.
    const commands = cliCommands()
    expect([...commands.keys()].sort()).toEqual(['api-key', 'bench', 'demo', 'maintain', 'migrate', 'rollups', 'seed', 'serve', 'simulate', 'token', 'worker'])
    const entries = [path.join(root, 'src/cli.ts'), ...[...new Set(commands.values())].map((m) => path.join(root, `src/commands/${m}.ts`))]
    for (const entry of entries) expect(existsSync(entry), entry).toBe(true)
    const imports = runtimeImports(entries)
    expect(imports.has('fastify')).toBe(true)
    const missing = [...imports].filter(([name]) => !(name in pkg.dependencies)).map(([name, file]) => `${name} (imported by ${file})`)
    expect(missing, 'move these to "dependencies" or the image cannot run them').toEqual([])
    // bench and simulate only spawn bench/cli.ts through tsx in a checkout: Node's built-ins and nothing else.
    expect([...runtimeImports([path.join(root, 'src/commands/bench.ts'), path.join(root, 'src/commands/simulate.ts')])]).toEqual([])
  })
})

/** Runs bin/coldboard.js in `cwd` with `env` on top of a production environment of its own. */
function coldboard (cwd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/coldboard.js', ...args], { cwd, env: { ...imageEnv, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr })
    })
  })
}
const jwtSecret = 'image-test-secret-image-test-secret-0123456789'
// The image's environment: no inherited NODE_OPTIONS or NODE_PATH that could load what the image lacks.
const imageEnv: Record<string, string> = { PATH: process.env.PATH ?? '', NODE_ENV: 'production', JWT_SECRET: jwtSecret, LOG_LEVEL: 'warn' }

describe('the image\'s /app, rebuilt in a temporary folder', { timeout: 120_000 }, () => {
  const app = mkdtempSync(path.join(tmpdir(), 'cb-image-'))
  const database = `cb_t_${randomBytes(6).toString('hex')}`
  const servers: ChildProcess[] = []

  beforeAll(async () => {
    // The build stage: the sources and the build configuration, all dependencies, `npm run build:server`.
    for (const entry of ['src', 'bin', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/copy-assets.mjs']) {
      cpSync(path.join(root, entry), path.join(app, entry), { recursive: true })
    }
    symlinkSync(path.join(root, 'node_modules'), path.join(app, 'node_modules'))
    await new Promise<void>((resolve, reject) => {
      execFile('npm', ['run', 'build:server', '--silent'], { cwd: app, timeout: 110_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`npm run build:server failed: ${stdout}${stderr}`))
        else resolve()
      })
    })
    // `npm prune --omit=dev && rm -rf src test bench`: only the production dependencies remain. Each is linked
    // from the checkout (its own dependencies resolve there), none of the dev dependencies is reachable from /app.
    unlinkSync(path.join(app, 'node_modules'))
    for (const name of Object.keys(pkg.dependencies)) {
      mkdirSync(path.dirname(path.join(app, 'node_modules', name)), { recursive: true })
      symlinkSync(path.join(root, 'node_modules', name), path.join(app, 'node_modules', name))
    }
    rmSync(path.join(app, 'src'), { recursive: true, force: true })
    await adminQuery(`CREATE DATABASE ${database}`)
  }, 120_000)

  afterAll(async () => {
    for (const s of servers) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL')
    rmSync(app, { recursive: true, force: true })
    await adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
  })

  it('holds compiled JavaScript that imports nothing outside dist/, with the migrations and Lua scripts next to it', () => {
    expect(existsSync(path.join(app, 'dist/cli.js'))).toBe(true)
    expect(existsSync(path.join(app, 'src'))).toBe(false)
    const files = (readdirSync(path.join(app, 'dist'), { recursive: true }) as string[]).map((f) => path.join(app, 'dist', f))
    expect(files.some((f) => f.endsWith('.sql'))).toBe(true)
    expect(files.some((f) => f.endsWith('.lua'))).toBe(true)
    const outside: string[] = []
    let relative = 0
    for (const file of files.filter((f) => f.endsWith('.js'))) {
      const source = readFileSync(file, 'utf8')
      for (const m of source.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)['"](\.[^'"]+)['"]/gm)) {
        relative++
        const target = path.resolve(path.dirname(file), m[1]!)
        if (!target.startsWith(path.join(app, 'dist') + path.sep) || !existsSync(target)) outside.push(`${path.relative(app, file)} → ${m[1]}`)
      }
    }
    expect(relative).toBeGreaterThan(100)
    expect(outside).toEqual([])
  })

  it('answers bench and simulate with the one line that they need a checkout, and a non-zero exit', async () => {
    for (const command of ['bench', 'simulate']) {
      const res = await coldboard(app, [command, '--smoke'])
      expect(res.code, command).not.toBe(0)
      expect(res.stdout).toBe('')
      expect(res.stderr.trim().split('\n')).toEqual([`coldboard: ${command} needs a checkout with its dev dependencies (git clone, npm install, then npx coldboard ${command})`])
    }
    // bench/ alone is not enough: without tsx (the dev dependencies pruned) the answer is the same.
    mkdirSync(path.join(app, 'bench'))
    try {
      writeFileSync(path.join(app, 'bench/cli.ts'), 'process.exit(0)\n')
      const res = await coldboard(app, ['bench'])
      expect(res.code).not.toBe(0)
      expect(res.stderr.trim().split('\n')).toEqual(['coldboard: bench needs a checkout with its dev dependencies (git clone, npm install, then npx coldboard bench)'])
    } finally {
      rmSync(path.join(app, 'bench'), { recursive: true, force: true })
    }
  })

  it('runs its commands with the production dependencies only: --help, token, migrate, seed', async () => {
    const help = await coldboard(app, ['--help'])
    expect(help.code).toBe(0)
    for (const command of ['serve', 'worker', 'migrate', 'token', 'api-key', 'seed']) expect(help.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'))

    const token = await coldboard(app, ['token', '--org', '00000000-0000-4000-8000-000000000001:manager'])
    expect(token.code, token.stderr).toBe(0)
    expect(token.stdout.trim()).toMatch(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/)

    // An empty database, as the compose file's migrate service finds it on the first start.
    const env = { DATABASE_URL: databaseUrl(database), REDIS_DISABLED: 'true' }
    const migrate = await coldboard(app, ['migrate'], env)
    expect(migrate.code, migrate.stderr).toBe(0)
    const seed = await coldboard(app, ['seed', '--orgs', '1', '--units', '3', '--hours', '1', '--interval-seconds', '300', '--seed', '4'], env)
    expect(seed.code, seed.stderr).toBe(0)
    expect(seed.stdout.trim()).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('starts the compose roles, `serve --no-worker` and `worker`, ready on /health/ready, and stops them on SIGTERM', async () => {
    const prefix = newPrefix()
    const env = { ...imageEnv, DATABASE_URL: databaseUrl(database), REDIS_URL: sharedRedisUrl, REDIS_KEY_PREFIX: prefix, HOST: '127.0.0.1' }
    for (const args of [['serve', '--no-worker'], ['worker']]) {
      const port = await freePort()
      const child = spawn(process.execPath, ['bin/coldboard.js', ...args], { cwd: app, env: { ...env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] })
      servers.push(child)
      let stderr = ''
      child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
      await waitFor(async () => {
        if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited ${child.exitCode}: ${stderr}`)
        const res = await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => null)
        return res?.status === 200
      }, 30_000, `${args.join(' ')} to answer /health/ready`)
      const health = await (await fetch(`http://127.0.0.1:${port}/health`)).json() as { checks: { redis: { ok: boolean } } }
      expect(health.checks.redis.ok, args.join(' ')).toBe(true)
      child.kill('SIGTERM')
      expect(await exited, `${args.join(' ')}: ${stderr}`).toBe(0)
    }
  })
})
