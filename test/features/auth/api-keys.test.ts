import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { eq } from 'drizzle-orm'
import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { App } from '../../../src/app.js'
import { apiKeys } from '../../../src/db/schema.js'
import { hashApiKey } from '../../../src/features/auth/tokens.js'
import type { TestDatabase } from '../../helpers/db.js'
import { useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'

/**
 * Device API keys managed by an organization's owners (src/features/management/routes-api-keys.ts,
 * src/features/auth/api-keys.ts) and by the CLI (src/commands/api-key.ts): created with the secret shown once,
 * listed without secrets, revoked so that the very next request with the key is refused, on every instance.
 */

const T0 = new Date('2030-04-01T12:00:00.000Z')
const errorBody = (code: string) => ({ error: { code, message: expect.any(String) } })
const keyFields = ['createdAt', 'id', 'name', 'organizationId', 'revokedAt']

describe('API keys over HTTP (postgres, shared Redis, two instances)', () => {
  const ctx = useTestApp({ clock: T0, redis: true })
  let fx: OrgFixture
  let stranger: OrgFixture
  let peer: App

  beforeAll(async () => {
    peer = (await ctx.peer()).app
  })
  beforeEach(async () => {
    ctx.clock.set(T0)
    fx = await ctx.org({ units: 1, createdAt: T0 })
    stranger = await ctx.org({ units: 1, createdAt: T0 })
  })

  const base = () => `/api/orgs/${fx.org.id}/api-keys`
  const owner = () => ctx.bearer({ [fx.org.id]: 'owner' })
  type Headers = Record<string, string>
  const create = (name = 'gateway 1', headers: Headers = owner(), app: App = ctx.app) =>
    app.inject({ method: 'POST', url: base(), headers, payload: { name } })
  const list = (headers: Headers = owner()) => ctx.app.inject({ url: base(), headers })
  const revoke = (keyId: string, app: App = ctx.app, headers: Headers = owner()) => app.inject({ method: 'DELETE', url: `${base()}/${keyId}`, headers })
  /** One reading through POST /api/ingest/readings with `key`, on `app`. */
  let minute = 0
  const ingestWith = (app: App, key: string) => app.inject({
    method: 'POST',
    url: '/api/ingest/readings',
    headers: { 'x-api-key': key },
    payload: { readings: [{ deviceEui: fx.devices[0]!.deviceEui, temperature: 5, recordedAt: new Date(T0.getTime() - 600_000 + 1000 * minute++).toISOString() }] }
  })

  it('creates a key (201, shown once), lists it without its secret, and the key ingests', async () => {
    const res = await create(' gateway 1 ')
    expect(res.statusCode).toBe(201)
    expect(res.headers['cache-control']).toBe('no-store')
    const body = res.json() as { key: string, apiKey: Record<string, unknown> }
    expect(body).toEqual({
      key: expect.stringMatching(/^cb_[A-Za-z0-9_-]{43}$/),
      apiKey: { id: expect.stringMatching(/^[0-9a-f-]{36}$/), organizationId: fx.org.id, name: 'gateway 1', createdAt: T0.toISOString(), revokedAt: null }
    })
    // Only the hash is stored.
    const [row] = await ctx.db.select().from(apiKeys).where(eq(apiKeys.id, body.apiKey.id as string))
    expect(row!.hash).toBe(hashApiKey(body.key))
    expect(JSON.stringify(row)).not.toContain(body.key)

    const listed = await list()
    expect(listed.statusCode).toBe(200)
    const keys = listed.json() as Array<Record<string, unknown>>
    // The fixture's key and the new one, oldest first.
    expect(keys).toHaveLength(2)
    expect(keys.at(-1)).toEqual(body.apiKey)
    for (const k of keys) expect(Object.keys(k).sort()).toEqual(keyFields)
    expect(listed.body).not.toContain(body.key)
    expect(listed.body).not.toContain(row!.hash)
    expect(listed.body).not.toContain(fx.apiKey)
    expect(listed.body).not.toContain(hashApiKey(fx.apiKey))

    expect((await ingestWith(ctx.app, body.key)).statusCode).toBe(202)
    expect((await ingestWith(peer, body.key)).statusCode).toBe(202)
  })

  it('revoked: refused from the next request on, on this instance and on another one', async () => {
    const { key, apiKey } = (await create()).json() as { key: string, apiKey: { id: string } }
    // Both instances have just accepted it (whatever they might remember of it).
    expect((await ingestWith(ctx.app, key)).statusCode).toBe(202)
    expect((await ingestWith(peer, key)).statusCode).toBe(202)

    ctx.clock.advance(60_000)
    const res = await revoke(apiKey.id)
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({ id: apiKey.id, organizationId: fx.org.id, name: 'gateway 1', createdAt: T0.toISOString(), revokedAt: new Date(T0.getTime() + 60_000).toISOString() })

    const here = await ingestWith(ctx.app, key)
    expect(here.statusCode).toBe(401)
    expect(here.json()).toEqual(errorBody('UNAUTHORIZED'))
    const there = await ingestWith(peer, key)
    expect(there.statusCode).toBe(401)
    expect(there.json()).toEqual(errorBody('UNAUTHORIZED'))
    // The organization's other key is untouched.
    expect((await ingestWith(peer, fx.apiKey)).statusCode).toBe(202)
    // Listed with its revocation time.
    expect((await list()).json()).toContainEqual(expect.objectContaining({ id: apiKey.id, revokedAt: new Date(T0.getTime() + 60_000).toISOString() }))
  })

  it('a key revoked on another instance is refused here', async () => {
    const { key, apiKey } = (await create('gw', owner(), peer)).json() as { key: string, apiKey: { id: string } }
    expect((await ingestWith(ctx.app, key)).statusCode).toBe(202)
    expect((await revoke(apiKey.id, peer)).statusCode).toBe(200)
    expect((await ingestWith(ctx.app, key)).statusCode).toBe(401)
  })

  it('revoking twice answers the key with its first revocation time', async () => {
    const { apiKey } = (await create()).json() as { apiKey: { id: string } }
    ctx.clock.advance(1000)
    const first = await revoke(apiKey.id)
    ctx.clock.advance(3_600_000)
    const second = await revoke(apiKey.id)
    expect(second.statusCode).toBe(200)
    expect(second.json()).toEqual(first.json())
    expect(second.json().revokedAt).toBe(new Date(T0.getTime() + 1000).toISOString())
  })

  it("an unknown key, or another organization's, is 404 (and stays usable); a malformed id is 400", async () => {
    const unknown = await revoke('00000000-0000-4000-8000-000000000000')
    expect(unknown.statusCode).toBe(404)
    expect(unknown.json()).toEqual(errorBody('NOT_FOUND'))
    const [theirs] = await ctx.db.select().from(apiKeys).where(eq(apiKeys.organizationId, stranger.org.id))
    const foreign = await revoke(theirs!.id)
    expect(foreign.statusCode).toBe(404)
    const [after] = await ctx.db.select().from(apiKeys).where(eq(apiKeys.id, theirs!.id))
    expect(after!.revokedAt).toBeNull()
    for (const bad of ['nope', `urn:uuid:${theirs!.id}`, `{${theirs!.id}}`]) {
      const res = await revoke(encodeURIComponent(bad))
      expect(res.statusCode, bad).toBe(400)
      expect(res.json()).toEqual(errorBody('VALIDATION_ERROR'))
    }
  })

  it('rejects a create without a usable name', async () => {
    for (const payload of [{}, { name: '' }, { name: '   ' }, { name: 42 }, { name: 'x', extra: true }]) {
      const res = await ctx.app.inject({ method: 'POST', url: base(), headers: owner(), payload })
      expect(res.statusCode, JSON.stringify(payload)).toBe(400)
      expect(res.json()).toEqual(errorBody('VALIDATION_ERROR'))
    }
    expect(await ctx.db.$count(apiKeys, eq(apiKeys.organizationId, fx.org.id))).toBe(1)
  })

  it("is for the organization's owners only: managers, viewers and other organizations' owners get 403, no token 401", async () => {
    const [fixtureKey] = await ctx.db.select().from(apiKeys).where(eq(apiKeys.organizationId, fx.org.id))
    const callers: Array<[string, Record<string, string>, number]> = [
      ['a manager', ctx.bearer({ [fx.org.id]: 'manager' }), 403],
      ['a viewer', ctx.bearer({ [fx.org.id]: 'viewer' }), 403],
      ["another organization's owner", ctx.bearer({ [stranger.org.id]: 'owner' }), 403],
      ['nobody', {}, 401]
    ]
    for (const [who, headers, status] of callers) {
      const code = status === 403 ? 'FORBIDDEN' : 'UNAUTHORIZED'
      const get = await list(headers)
      expect(get.statusCode, `${who} GET`).toBe(status)
      expect(get.json()).toEqual(errorBody(code))
      const post = await create('sneaky', headers)
      expect(post.statusCode, `${who} POST`).toBe(status)
      expect(post.json()).toEqual(errorBody(code))
      const del = await revoke(fixtureKey!.id, ctx.app, headers)
      expect(del.statusCode, `${who} DELETE`).toBe(status)
      expect(del.json()).toEqual(errorBody(code))
    }
    // Nothing was created or revoked.
    const rows = await ctx.db.select().from(apiKeys).where(eq(apiKeys.organizationId, fx.org.id))
    expect(rows).toEqual([expect.objectContaining({ id: fixtureKey!.id, revokedAt: null })])
    expect((await ingestWith(ctx.app, fx.apiKey)).statusCode).toBe(202)
  })
})

const root = path.resolve(import.meta.dirname, '../../..')
const run = promisify(execFile)

/** The built CLI (bin/coldboard.js runs dist/: `npm run build:server`), against the test's database. */
async function coldboard (args: string[], databaseUrl: string) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/coldboard.js', ...args], { cwd: root, env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent' } })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

describe('coldboard api-key create | list | revoke (child process, the database of a running app)', () => {
  const ctx = useTestApp()
  let fx: OrgFixture
  const url = () => (ctx.database as TestDatabase).url
  let sent = 0
  const ingest = (key: string) => ctx.app.inject({
    method: 'POST',
    url: '/api/ingest/readings',
    headers: { 'x-api-key': key },
    payload: { readings: [{ deviceEui: fx.devices[0]!.deviceEui, temperature: 5, recordedAt: new Date(Date.now() - 60_000 * ++sent).toISOString() }] }
  })

  beforeAll(async () => {
    fx = await ctx.org({ units: 1 })
  })

  it('creates a key that the app accepts, lists every key without secrets, and revokes one so that the app refuses it', async () => {
    const created = await coldboard(['api-key', 'create', '--org', fx.org.id, '--name', 'north gateway'], url())
    expect(created.code, created.stderr).toBe(0)
    const key = created.stdout.trim()
    expect(key).toMatch(/^cb_[A-Za-z0-9_-]{43}$/)
    expect(created.stdout).toBe(`${key}\n`)
    expect((await ingest(key)).statusCode).toBe(202)

    const listed = await coldboard(['api-key', 'list', '--org', fx.org.id], url())
    expect(listed.code, listed.stderr).toBe(0)
    const lines = listed.stdout.trim().split('\n')
    const rows = await ctx.db.select().from(apiKeys).where(eq(apiKeys.organizationId, fx.org.id))
    expect(lines).toHaveLength(rows.length)
    expect(rows).toHaveLength(2)
    const mine = rows.find((r) => r.name === 'north gateway')!
    expect(lines).toContainEqual(`${mine.id}\t${mine.createdAt.toISOString()}\tactive\tnorth gateway`)
    for (const secret of [key, fx.apiKey, ...rows.map((r) => r.hash)]) expect(listed.stdout).not.toContain(secret)
    expect(lines.map((l) => l.split('\t')[0]).sort()).toEqual(rows.map((r) => r.id).sort())

    const revoked = await coldboard(['api-key', 'revoke', '--org', fx.org.id, mine.id], url())
    expect(revoked.code, revoked.stderr).toBe(0)
    expect(revoked.stdout).toBe('')
    const res = await ingest(key)
    expect(res.statusCode).toBe(401)
    expect(res.json()).toEqual(errorBody('UNAUTHORIZED'))
    // The other key still works; the list shows the revocation.
    expect((await ingest(fx.apiKey)).statusCode).toBe(202)
    const [after] = await ctx.db.select().from(apiKeys).where(eq(apiKeys.id, mine.id))
    const again = await coldboard(['api-key', 'list', '--org', fx.org.id], url())
    expect(again.stdout).toContain(`${mine.id}\t${mine.createdAt.toISOString()}\trevoked ${after!.revokedAt!.toISOString()}\tnorth gateway`)
  })

  it('fails with a message, and a non-zero exit, on an unknown key, an unknown organization or missing arguments', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['api-key', 'revoke', '--org', fx.org.id, '00000000-0000-4000-8000-000000000000'], /not found/i],
      [['api-key', 'list', '--org', '00000000-0000-4000-8000-000000000000'], /not found/i],
      [['api-key', 'list'], /--org/],
      [['api-key', 'revoke', '--org', fx.org.id], /key id/],
      [['api-key', 'rotate', '--org', fx.org.id], /usage/]
    ]
    for (const [args, message] of cases) {
      const res = await coldboard(args, url())
      expect(res.code, args.join(' ')).not.toBe(0)
      expect(res.stderr, args.join(' ')).toMatch(message)
      expect(res.stdout).toBe('')
    }
  })
})
