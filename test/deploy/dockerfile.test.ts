import { existsSync, readFileSync, statSync } from 'node:fs'
import { builtinModules } from 'node:module'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

// No Docker engine runs here: the Dockerfile is read, and what the image relies on is checked in the
// repository (the build script, the dependencies its commands import).

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

// The commands an operator runs in the container; `bench`, `simulate` and `demo` are for a checkout.
const imageCommands = ['serve', 'migrate', 'token', 'api-key', 'seed']

/** Package names imported at run time by a module and every relative module it imports. */
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
      // The CLI loads each command lazily: only the image's commands are followed from it.
      ...[...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!)
        .filter((spec) => !/^\.\/commands\//.test(spec) || imageCommands.some((c) => spec === `./commands/${c}.js`))
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
  it('builds on node:20-slim with npm ci, the whole repository and npm run build', () => {
    const [build, runtime] = stages()
    expect(build![0]).toMatch(/^FROM node:20-slim\b/)
    expect(runtime![0]).toMatch(/^FROM node:20-slim$/)
    const steps = build!.join('\n')
    // Order matters: dependencies, then the sources, then the page built from them.
    const order = ['RUN npm ci', 'COPY . .', 'RUN npm run build', 'RUN npm prune --omit=dev'].map((s) => steps.indexOf(s))
    expect(order.every((i) => i >= 0)).toBe(true)
    expect([...order].sort((a, b) => a - b)).toEqual(order)
    expect(pkg.scripts.build).toBeDefined()
  })

  it('runs bin/coldboard.js as an unprivileged user, serve by default', () => {
    const runtime = stages()[1]!.join('\n')
    expect(runtime).toMatch(/^ENTRYPOINT \["node", "bin\/coldboard\.js"\]$/m)
    expect(runtime).toMatch(/^CMD \["serve"\]$/m)
    expect(runtime).toMatch(/^USER node$/m)
    expect(runtime).toMatch(/^ENV NODE_ENV=production/m)
    expect(existsSync(path.join(root, 'bin/coldboard.js'))).toBe(true)
  })

  it('keeps secrets and local state out of the build context', () => {
    const ignored = read('deploy/Dockerfile.dockerignore').split('\n').map((l) => l.trim())
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', '.env', 'deploy/.env', '.coldboard', '.git']))
  })

  it('has every package its commands import at run time after `npm prune --omit=dev`', () => {
    const entries = [path.join(root, 'src/cli.ts'), ...imageCommands.map((c) => path.join(root, `src/commands/${c}.ts`))]
    for (const entry of entries) expect(existsSync(entry), entry).toBe(true)
    const imports = runtimeImports(entries)
    expect(imports.has('fastify')).toBe(true)
    // bin/coldboard.js runs the TypeScript sources through tsx.
    expect(read('bin/coldboard.js')).toMatch(/from 'tsx\/esm\/api'/)
    imports.set('tsx', 'bin/coldboard.js')
    const missing = [...imports].filter(([name]) => !(name in pkg.dependencies)).map(([name, file]) => `${name} (imported by ${file})`)
    expect(missing, 'move these to "dependencies" or the image cannot run them').toEqual([])
  })
})
