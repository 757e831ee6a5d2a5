import { randomBytes, randomUUID } from 'node:crypto'
import { eq } from 'drizzle-orm'
import { beforeAll, describe, expect, it } from 'vitest'
import { organizations, sites } from '../../../src/db/schema.js'
import { useTestApp } from '../../helpers/fixture.js'
import type { OrgFixture } from '../../helpers/fixtures.js'

const errorBody = (code: string) => ({ error: { code, message: expect.any(String) } })

describe('management: organizations and sites', () => {
  const ctx = useTestApp({ clock: new Date('2025-03-01T08:00:00.000Z') })
  let a: OrgFixture
  let b: OrgFixture
  const admin = () => ctx.bearer({}, { admin: true })

  beforeAll(async () => {
    a = await ctx.org({ units: 0 })
    b = await ctx.org({ units: 0 })
  })

  const orgCount = () => ctx.db.$count(organizations)
  const siteCount = (orgId: string) => ctx.db.$count(sites, eq(sites.organizationId, orgId))

  describe('POST /api/orgs', () => {
    it('creates an organization with a slug derived from its name', async () => {
      const tag = randomBytes(3).toString('hex')
      const res = await ctx.app.inject({ method: 'POST', url: '/api/orgs', headers: admin(), payload: { name: `  Café Crème ${tag} ` } })
      expect(res.statusCode).toBe(201)
      expect(res.json()).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name: `Café Crème ${tag}`,
        slug: `cafe-creme-${tag}`,
        createdAt: '2025-03-01T08:00:00.000Z'
      })
      const [row] = await ctx.db.select().from(organizations).where(eq(organizations.id, res.json().id))
      expect(row?.slug).toBe(`cafe-creme-${tag}`)
    })

    it('keeps an explicit slug and refuses a duplicate with 409, writing nothing', async () => {
      const slug = `lab-${randomBytes(3).toString('hex')}`
      const first = await ctx.app.inject({ method: 'POST', url: '/api/orgs', headers: admin(), payload: { name: 'Lab', slug } })
      expect(first.statusCode).toBe(201)
      expect(first.json().slug).toBe(slug)
      const before = await orgCount()

      const again = await ctx.app.inject({ method: 'POST', url: '/api/orgs', headers: admin(), payload: { name: 'Another lab', slug } })
      expect(again.statusCode).toBe(409)
      expect(again.json()).toEqual(errorBody('DUPLICATE_SLUG'))

      // The derived slug of a name that collides is refused the same way.
      const derived = await ctx.app.inject({ method: 'POST', url: '/api/orgs', headers: admin(), payload: { name: slug.toUpperCase() } })
      expect(derived.statusCode).toBe(409)
      expect(await orgCount()).toBe(before)
    })

    it('gives a name without latin letters a usable slug', async () => {
      const res = await ctx.app.inject({ method: 'POST', url: '/api/orgs', headers: admin(), payload: { name: '冷蔵庫' } })
      expect(res.statusCode).toBe(201)
      expect(res.json().slug).toMatch(/^org-[0-9a-f]{8}$/)
    })

    it('is refused to tokens without admin, and without a token', async () => {
      const before = await orgCount()
      const owner = await ctx.app.inject({ method: 'POST', url: '/api/orgs', headers: ctx.bearer({ [a.org.id]: 'owner' }), payload: { name: 'Nope' } })
      expect(owner.statusCode).toBe(403)
      expect(owner.json()).toEqual(errorBody('FORBIDDEN'))
      const anonymous = await ctx.app.inject({ method: 'POST', url: '/api/orgs', payload: { name: 'Nope' } })
      expect(anonymous.statusCode).toBe(401)
      expect(anonymous.json()).toEqual(errorBody('UNAUTHORIZED'))
      expect(await orgCount()).toBe(before)
    })

    it.each([
      ['no name', {}],
      ['an empty name', { name: '' }],
      ['a blank name', { name: '   ' }],
      ['a slug with capitals', { name: 'x', slug: 'Bad-Slug' }],
      ['a slug with a trailing dash', { name: 'x', slug: 'bad-' }],
      ['an unknown field', { name: 'x', plan: 'gold' }],
      ['a name that is not a string', { name: { en: 'x' } }],
      ['a name over 200 characters', { name: 'x'.repeat(201) }]
    ])('rejects %s with 400 and writes nothing', async (_case, payload) => {
      const before = await orgCount()
      const res = await ctx.app.inject({ method: 'POST', url: '/api/orgs', headers: admin(), payload })
      expect(res.statusCode).toBe(400)
      expect(res.json()).toEqual(errorBody('VALIDATION_ERROR'))
      expect(await orgCount()).toBe(before)
    })
  })

  describe('sites', () => {
    it('creates a site for a manager and lists the organization\'s sites by name', async () => {
      const manager = ctx.bearer({ [a.org.id]: 'manager' })
      const res = await ctx.app.inject({ method: 'POST', url: `/api/orgs/${a.org.id}/sites`, headers: manager, payload: { name: 'A kitchen' } })
      expect(res.statusCode).toBe(201)
      expect(res.json()).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        organizationId: a.org.id,
        name: 'A kitchen',
        isActive: true,
        createdAt: '2025-03-01T08:00:00.000Z'
      })

      const list = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/sites`, headers: ctx.bearer({ [a.org.id]: 'viewer' }) })
      expect(list.statusCode).toBe(200)
      expect(list.json()).toEqual([res.json(), expect.objectContaining({ id: a.site.id, name: a.site.name })])
      expect(list.json().map((s: { id: string }) => s.id)).not.toContain(b.site.id)
    })

    it('refuses writes to viewers and to members of other organizations', async () => {
      const before = await siteCount(a.org.id)
      const viewer = await ctx.app.inject({ method: 'POST', url: `/api/orgs/${a.org.id}/sites`, headers: ctx.bearer({ [a.org.id]: 'viewer' }), payload: { name: 'x' } })
      expect(viewer.statusCode).toBe(403)
      const other = await ctx.app.inject({ method: 'POST', url: `/api/orgs/${a.org.id}/sites`, headers: ctx.bearer({ [b.org.id]: 'owner' }), payload: { name: 'x' } })
      expect(other.statusCode).toBe(403)
      const read = await ctx.app.inject({ url: `/api/orgs/${a.org.id}/sites`, headers: ctx.bearer({ [b.org.id]: 'owner' }) })
      expect(read.statusCode).toBe(403)
      expect(await siteCount(a.org.id)).toBe(before)
    })

    it('answers 404 for an organization that does not exist, even with a token naming it', async () => {
      const ghost = randomUUID()
      const headers = ctx.bearer({ [ghost]: 'owner' })
      const post = await ctx.app.inject({ method: 'POST', url: `/api/orgs/${ghost}/sites`, headers, payload: { name: 'x' } })
      expect(post.statusCode).toBe(404)
      expect(post.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'organization not found' } })
      const get = await ctx.app.inject({ url: `/api/orgs/${ghost}/sites`, headers })
      expect(get.statusCode).toBe(404)
      expect(await siteCount(ghost)).toBe(0)
    })

    it.each([
      ['a malformed organization id', 'not-a-uuid', { name: 'x' }],
      ['a missing name', null, {}],
      ['a blank name', null, { name: ' ' }],
      ['an unknown field', null, { name: 'x', isActive: false }]
    ])('rejects %s with 400 and writes nothing', async (_case, orgId, payload) => {
      const id = orgId ?? a.org.id
      const before = await siteCount(a.org.id)
      const res = await ctx.app.inject({
        method: 'POST',
        url: `/api/orgs/${id}/sites`,
        headers: ctx.bearer({ [id]: 'manager' }),
        payload
      })
      expect(res.statusCode).toBe(400)
      expect(res.json()).toEqual(errorBody('VALIDATION_ERROR'))
      expect(await siteCount(a.org.id)).toBe(before)
    })
  })
})
