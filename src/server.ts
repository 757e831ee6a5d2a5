import closeWithGrace from 'close-with-grace'
import { buildApp, type BuildOptions } from './app.js'

/** Builds, migrates, listens, and closes gracefully on SIGTERM/SIGINT (in-flight requests finish). */
export async function startServer (opts: BuildOptions & { port?: number, host?: string, migrate?: boolean }) {
  const app = await buildApp(opts)
  if (opts.migrate !== false) await app.database.migrate()
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an uncaught error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })
  try {
    const address = await app.listen({ port: opts.port ?? opts.config.PORT, host: opts.host ?? opts.config.HOST })
    return { app, address }
  } catch (err) {
    // e.g. the port is taken: release the database and Redis so the process can exit with the error.
    await app.close()
    throw err
  }
}
