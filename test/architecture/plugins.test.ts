import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { backends, useTestApp } from '../helpers/fixture.js'

// The plugin graph as declared (fastify-plugin `name`, `dependencies`, `decorators.fastify`) against what each
// plugin's files actually use: a plugin that reads `app.queue` must declare the queue plugin, and a plugin that
// declares a dependency must use it. Reading the sources keeps the check independent of registration order.

const root = path.resolve(import.meta.dirname, '../..')
const src = (p: string) => readFileSync(path.join(root, p), 'utf8')

interface PluginInfo { file: string, name: string, dependencies: string[], decorators: string[], provides: string[], uses: Set<string>, routes: boolean }

const list = (text: string | undefined) => [...(text ?? '').matchAll(/'([^']+)'/g)].map((m) => m[1]!)

function pluginFiles (): string[] {
  const features = readdirSync(path.join(root, 'src/features')).map((f) => `src/features/${f}/index.ts`)
  return ['src/infra/redis.ts', ...features]
}

function describePlugin (file: string): PluginInfo {
  const text = src(file)
  const meta = /\}, \{ name: '([^']+)'(?:, dependencies: \[([^\]]*)\])?(?:, decorators: \{ fastify: \[([^\]]*)\] \})? \}\)\s*$/m.exec(text)
  if (!meta) throw new Error(`${file}: no fastify-plugin metadata line`)
  const folder = path.dirname(file)
  const siblings = file.startsWith('src/features/') ? readdirSync(path.join(root, folder)).filter((f) => /^(index|routes.*)\.ts$/.test(f)).map((f) => src(`${folder}/${f}`)) : [text]
  const uses = new Set<string>()
  for (const body of siblings) for (const m of body.matchAll(/\b(?:app|fastify|core)\.(\w+)/g)) uses.add(m[1]!)
  return {
    file,
    name: meta[1]!,
    dependencies: list(meta[2]),
    decorators: list(meta[3]),
    provides: [...text.matchAll(/\.decorate\('(\w+)'/g)].map((m) => m[1]!),
    uses,
    routes: file.startsWith('src/features/') && readdirSync(path.join(root, folder)).some((f) => f.endsWith('.ts') && src(`${folder}/${f}`).includes("'/api/"))
  }
}

const plugins = pluginFiles().map(describePlugin)
// The core plugin lives in src/app.ts.
const core: PluginInfo = { file: 'src/app.ts', name: 'core', dependencies: [], decorators: [], provides: ['config', 'clock', 'database', 'db', 'metrics'], uses: new Set(), routes: false }
const all = [core, ...plugins]
const owner = new Map(all.flatMap((p) => p.provides.map((d) => [d, p.name] as const)))

describe('plugin dependencies', () => {
  it.each(plugins.map((p) => [p.name, p] as const))('%s declares exactly the decorators and plugins it uses', (_name, p) => {
    const used = [...p.uses].filter((d) => owner.has(d) && !p.provides.includes(d)).sort()
    expect(p.decorators.sort(), `${p.file}: decorators.fastify`).toEqual(used)
    const needed = [...new Set(used.map((d) => owner.get(d)!))]
    // auth guards every /api route through its hooks: a plugin with /api routes depends on it without a decorator.
    if (p.routes && p.name !== 'auth') needed.push('auth')
    expect([...new Set(p.dependencies)].sort(), `${p.file}: dependencies`).toEqual([...new Set(needed)].sort())
  })

  it('every plugin name is unique and every dependency names a plugin', () => {
    const names = all.map((p) => p.name)
    expect(new Set(names).size).toBe(names.length)
    for (const p of plugins) for (const d of p.dependencies) expect(names, `${p.name} depends on ${d}`).toContain(d)
  })
})

describe.each(backends)('the app builds with every dependency declared and met ($name)', ({ name }) => {
  // fastify-plugin refuses to register a plugin whose declared dependencies or decorators are missing.
  const ctx = useTestApp({ backend: name })
  it('registers every plugin', () => {
    for (const p of plugins) for (const d of p.provides) expect(ctx.app.hasDecorator(d), `${p.name} → ${d}`).toBe(true)
  })
})
