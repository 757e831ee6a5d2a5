import http from 'node:http'
import { performance } from 'node:perf_hooks'

export interface HttpResult {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  /** From the call to the last byte of the body, as a client sees it. */
  ms: number
}

/**
 * A keep-alive HTTP/1.1 client on node:http: cheaper per request than fetch, so the simulator's own CPU
 * (it shares the machine with the server) stays small. Status 0 means the request never got an answer.
 */
export function createHttpClient (opts: { maxSockets?: number, timeoutMs?: number } = {}) {
  // Unbounded by default: a request never waits for a client-side socket, so the latency measured is the server's.
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? Infinity, maxFreeSockets: opts.maxSockets ?? 4096 })
  const timeoutMs = opts.timeoutMs ?? 30_000

  function request (method: string, url: string, headers: Record<string, string>, body?: string): Promise<HttpResult> {
    const started = performance.now()
    return new Promise((resolve) => {
      const done = (status: number, h: http.IncomingHttpHeaders, text: string) =>
        resolve({ status, headers: h, body: text, ms: performance.now() - started })
      const req = http.request(url, {
        method,
        agent,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
      }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => done(res.statusCode ?? 0, res.headers, Buffer.concat(chunks).toString('utf8')))
        res.on('error', () => done(0, {}, ''))
      })
      req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')))
      req.on('error', () => done(0, {}, ''))
      req.end(body)
    })
  }

  return {
    get: (url: string, headers: Record<string, string> = {}) => request('GET', url, headers),
    post: (url: string, headers: Record<string, string>, body: string) => request('POST', url, headers, body),
    close: () => agent.destroy()
  }
}
export type HttpClient = ReturnType<typeof createHttpClient>
