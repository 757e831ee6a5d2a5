import { describe, expect, it } from 'vitest'
import { useTestApp } from './helpers/fixture.js'

describe('app boots on PostgreSQL', () => {
  const ctx = useTestApp()

  it('serves the OpenAPI document', async () => {
    const res = await ctx.app.inject({ url: '/docs/json' })
    expect(res.statusCode).toBe(200)
    expect(res.json().openapi).toMatch(/^3\./)
  })

  it('answers unknown routes with the error shape', async () => {
    const res = await ctx.app.inject({ url: '/nope' })
    expect(res.statusCode).toBe(404)
    expect(res.json()).toEqual({ error: { code: 'NOT_FOUND', message: expect.any(String) } })
  })
})
