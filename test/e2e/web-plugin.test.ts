import { execSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import Fastify from 'fastify'
import fp from 'fastify-plugin'
import { beforeAll, describe, expect, it } from 'vitest'
import webPlugin, { webDist } from '../../src/features/web/index.js'
import { useTestApp } from '../helpers/fixture.js'

// The page is served at `/` next to the API, without shadowing any other route.

describe('web plugin: the dashboard page at /', () => {
  // `npm run build` builds the page; a lone `vitest run` may not have. Before the app, which looks for it.
  beforeAll(() => {
    if (!existsSync(path.join(webDist, 'index.html'))) execSync('npx vite build --config web/vite.config.ts', { stdio: 'pipe' })
  })
  const ctx = useTestApp({ backend: 'pglite' })

  it('serves the built page and its hashed assets, cached accordingly', async () => {
    const page = await ctx.app.inject({ method: 'GET', url: '/' })
    expect(page.statusCode).toBe(200)
    expect(page.headers['content-type']).toMatch(/^text\/html/)
    expect(page.headers['cache-control']).toBe('no-cache')
    expect(page.body).toBe(readFileSync(path.join(webDist, 'index.html'), 'utf8'))

    const script = /src="(\/assets\/[^"]+\.js)"/.exec(page.body)?.[1]
    expect(script).toBeDefined()
    const asset = await ctx.app.inject({ method: 'GET', url: script! })
    expect(asset.statusCode).toBe(200)
    expect(asset.headers['content-type']).toMatch(/javascript/)
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable')
  })

  it('leaves /api, /health, /metrics and unknown paths to their own handlers', async () => {
    const api = await ctx.app.inject({ method: 'GET', url: '/api/orgs' })
    expect(api.headers['content-type']).toMatch(/json/)
    expect(api.json()).toHaveProperty('error.code')
    expect((await ctx.app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200)
    expect((await ctx.app.inject({ method: 'GET', url: '/metrics' })).body).toContain('dashboard_cache_hit_total')
    const missing = await ctx.app.inject({ method: 'GET', url: '/no-such-page' })
    expect(missing.statusCode).toBe(404)
    expect(missing.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'no route GET /no-such-page' } })
  })

  it('says to run `npm run build` when the page has not been built', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'coldboard-web-'))
    const warnings: string[] = []
    const bare = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(line) } } } })
    try {
      await bare.register(fp(async () => {}, { name: 'core' }))
      await bare.register(webPlugin, { root: empty })
      const res = await bare.inject({ method: 'GET', url: '/' })
      expect(res.statusCode).toBe(200)
      expect(res.headers['content-type']).toMatch(/^text\/html/)
      expect(res.body).toContain('npm run build')
      expect(warnings.filter((w) => w.includes('dashboard page not built'))).toHaveLength(1)
    } finally {
      await bare.close()
      rmSync(empty, { recursive: true, force: true })
    }
  })
})
