import net from 'node:net'

/** Listens on 127.0.0.1:`port` (0: the OS picks one) and closes again; the port it got. Rejects when it cannot. */
function listenOnce (port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(port, '127.0.0.1', () => {
      const { port: got } = srv.address() as net.AddressInfo
      srv.close(() => resolve(got))
    })
  })
}

/** A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it). */
export function freePort (): Promise<number> {
  return listenOnce(0)
}

/** Whether 127.0.0.1:`port` can be listened on right now (nothing listens on it or holds it). */
export async function portIsFree (port: number): Promise<boolean> {
  return listenOnce(port).then(() => true, () => false)
}

/** Polls `check` every 25 ms until it answers true; rejects after `timeoutMs` naming `what`. */
export async function waitFor (check: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}
