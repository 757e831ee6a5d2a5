import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import fastifyStatic from '@fastify/static'
import helmet from '@fastify/helmet'
import { HTML_SECURITY } from '../../http/index.js'

/** web/dist, built by `npm run build` (vite); resolved from this file so the working directory does not matter. */
export const webDist = fileURLToPath(new URL('../../../web/dist', import.meta.url))

const notBuilt = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>coldboard</title></head>
<body><h1>coldboard</h1>
<p>The dashboard page has not been built. Run <code>npm run build</code>, then reload.</p>
<p>The API is up: see <a href="/docs">/docs</a> and <a href="/health">/health</a>.</p>
</body></html>`

/**
 * The dashboard page at `/`. One route per built file (`wildcard: false`) rather than a catch-all,
 * so /api, /docs, /health, /metrics and /socket.io keep their own routes and 404s. Files are listed
 * at start-up: a rebuild while the server runs needs a restart to serve new asset names.
 */
export default fp(async function webPlugin (app, opts: { root?: string } = {}) {
  const root = opts.root ?? webDist
  if (!existsSync(path.join(root, 'index.html'))) {
    app.log.child({ component: 'web' }).warn({ root }, 'dashboard page not built: run `npm run build`')
    await app.register(async (html) => {
      await html.register(helmet, HTML_SECURITY)
      html.get('/', { schema: { hide: true } }, async (_req, reply) =>
        reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(notBuilt))
    })
    return
  }
  // helmet's HTML set, in a scope of its own: the JSON API sets its own, lighter headers (src/http/index.ts).
  await app.register(async (html) => {
    await html.register(helmet, HTML_SECURITY)
    await html.register(fastifyStatic, {
      root,
      prefix: '/',
      wildcard: false,
      index: ['index.html'],
      // Vite names assets by content hash: cache them for good; always revalidate the page that names them.
      cacheControl: false,
      setHeaders (res, file) {
        res.setHeader('cache-control', file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache')
      }
    })
  })
}, { name: 'web' })
