import net from 'node:net'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { errorCodes } from '../../src/errors.js'
import { files, generate } from '../../scripts/api-contract.js'
import { useTestApp } from '../helpers/fixture.js'

/** A raw HTTP exchange: what Node's parser answers before Fastify sees anything. */
async function raw (port: number, request: string): Promise<{ status: number, headers: string, body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(request))
    let data = ''
    socket.setEncoding('utf8').on('data', (c: string) => { data += c }).on('error', reject).on('close', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n')
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head, body })
    })
  })
}

describe('every response coldboard or Fastify sends has the error body', () => {
  const ctx = useTestApp({ listen: true })
  const token = () => ctx.bearer({ '11111111-1111-4111-8111-111111111111': 'owner' }, { admin: true })
  const isErrorBody = (body: unknown, code: string) => expect(body).toEqual({ error: { code, message: expect.any(String) } })

  it('404 for an unknown route and an unknown method (under /api, once authenticated: strangers get 401)', async () => {
    expect((await fetch(ctx.url + '/api/no/such/route')).status).toBe(401)
    for (const [method, url] of [['GET', '/no/such/route'], ['PUT', '/api/orgs'], ['DELETE', '/health'], ['GET', '/api/no/such/route']] as const) {
      const res = await fetch(ctx.url + url, { method, headers: token() })
      expect(res.status).toBe(404)
      isErrorBody(await res.json(), 'NOT_FOUND')
    }
  })

  it('414 for a path parameter longer than any id, without quoting the URL back', async () => {
    const long = 'a'.repeat(500)
    const res = await fetch(`${ctx.url}/api/orgs/${long}/units`, { headers: token() })
    expect(res.status).toBe(414)
    const body = await res.json()
    isErrorBody(body, 'URI_TOO_LONG')
    expect(JSON.stringify(body)).not.toContain(long.slice(0, 50))
  })

  it('400 for a URL that cannot be decoded, without quoting it', async () => {
    const res = await fetch(`${ctx.url}/api/orgs/%E0%A4%A/units`, { headers: token() })
    expect(res.status).toBe(400)
    const body = await res.json()
    isErrorBody(body, 'BAD_REQUEST')
    expect(JSON.stringify(body)).not.toContain('%E0')
  })

  it('413, 415 and broken JSON on a write route', async () => {
    const post = (body: string, type: string) => fetch(`${ctx.url}/api/orgs`, { method: 'POST', headers: { ...token(), 'content-type': type }, body })
    const big = await post(JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }), 'application/json')
    expect(big.status).toBe(413)
    isErrorBody(await big.json(), 'PAYLOAD_TOO_LARGE')
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const res = await post('name=x', type)
      expect(res.status, type).toBe(415)
      isErrorBody(await res.json(), 'UNSUPPORTED_MEDIA_TYPE')
    }
    const broken = await post('{"name":', 'application/json')
    expect(broken.status).toBe(400)
    isErrorBody(await broken.json(), 'INVALID_JSON')
  })

  it("431 for oversized headers and 400 for a broken HTTP message, answered by Node's parser with the error body", async () => {
    const port = Number(new URL(ctx.url).port)
    const huge = await raw(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
    expect(huge.status).toBe(431)
    expect(huge.headers).toMatch(/content-type: application\/json/i)
    isErrorBody(JSON.parse(huge.body), 'HEADERS_TOO_LARGE')
    const broken = await raw(port, 'NOT AN HTTP REQUEST\r\n\r\n')
    expect(broken.status).toBe(400)
    isErrorBody(JSON.parse(broken.body), 'BAD_REQUEST')
  })

  it('every code in an error body is one of the catalogue, with its status', () => {
    for (const [code, { status }] of Object.entries(errorCodes)) {
      expect(code).toMatch(/^[A-Z_]+$/)
      expect(status).toBeGreaterThanOrEqual(400)
    }
  })
})

describe('the committed contract is what the code generates', () => {
  it('docs/openapi.json, web/src/generated/openapi.ts and the catalogue of docs/api.md', async () => {
    const generated = await generate()
    for (const [file, text] of Object.entries(generated)) expect(readFileSync(file, 'utf8'), `${file}: run npm run api:generate`).toBe(text)
    expect(Object.keys(generated).sort()).toEqual(Object.values(files).sort())
  })
})
