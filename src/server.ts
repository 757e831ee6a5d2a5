import closeWithGrace from 'close-with-grace'
import { buildApp, type BuildOptions } from './app.js'

/**
 * Builds, migrates, listens, and closes gracefully on SIGTERM/SIGINT (in-flight requests finish). What the caller
 * registers with `beforeClose` (the demo's simulator, a client of this very server) stops first, so that no
 * request of its own keeps the HTTP server from closing.
 */
export async function startServer (opts: BuildOptions & { port?: number, host?: string, migrate?: boolean }) {
  const app = await buildApp(opts)
  if (opts.migrate !== false) await app.database.migrate()
  const first: Array<() => Promise<void>> = []
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an uncaught error')
    else app.log.info({ signal }, 'shutting down')
    await Promise.allSettled(first.map((fn) => fn()))
    await app.close()
  })
  try {
    const address = await app.listen({ port: opts.port ?? opts.config.PORT, host: opts.host ?? opts.config.HOST })
    return { app, address, beforeClose: (fn: () => Promise<void>) => { first.push(fn) } }
  } catch (err) {
    // e.g. the port is taken: release the database and Redis so the process can exit with the error.
    await app.close()
    throw err
  }
}
