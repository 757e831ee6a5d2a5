import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp } from './helpers/app.js'
import { createTestDatabase, type TestDatabase } from './helpers/db.js'
import type { App } from '../src/app.js'

describe('app boots on PostgreSQL', () => {
  let db: TestDatabase
  let app: App
  beforeAll(async () => {
    db = await createTestDatabase()
    app = await buildTestApp({ database: db })
    await app.ready()
  })
  afterAll(async () => { await app?.close(); await db?.drop() })

  it('serves the OpenAPI document', async () => {
    const res = await app.inject({ url: '/docs/json' })
    expect(res.statusCode).toBe(200)
    expect(res.json().openapi).toMatch(/^3\./)
  })

  it('answers unknown routes with the error shape', async () => {
    const res = await app.inject({ url: '/nope' })
    expect(res.statusCode).toBe(404)
    expect(res.json()).toEqual({ error: { code: 'NOT_FOUND', message: expect.any(String) } })
  })
})
