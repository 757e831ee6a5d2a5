import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { organizationJson, siteJson } from './json.js'
import { sendPage } from '../../http/paging.js'
import { CreateOrganizationBody, CreateSiteBody, ErrorResponse, OrgParams, Organization, PageOnlyQuery, Site } from './schemas.js'
import type { ManagementService } from './service.js'

/** POST /api/orgs (admin tokens only) and an organization's sites. */
export function orgRoutes (fastify: FastifyInstance, service: ManagementService): void {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.post('/api/orgs', {
    config: { admin: true },
    schema: {
      tags: ['organizations'],
      operationId: 'createOrganization',
      summary: 'Create an organization (admin token)',
      body: CreateOrganizationBody,
      response: { 201: Organization, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 409: ErrorResponse }
    }
  }, async (req, reply) => {
    const org = await service.createOrganization(req.body)
    return reply.code(201).send(organizationJson(org))
  })

  app.post('/api/orgs/:orgId/sites', {
    schema: {
      tags: ['sites'],
      operationId: 'createSite',
      summary: 'Create a site',
      params: OrgParams,
      body: CreateSiteBody,
      response: { 201: Site, 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse }
    }
  }, async (req, reply) => {
    const site = await service.createSite(req.params.orgId, req.body)
    return reply.code(201).send(siteJson(site))
  })

  app.get('/api/orgs/:orgId/sites', {
    schema: {
      tags: ['sites'],
      operationId: 'listSites',
      summary: "List the organization's sites",
      description: 'By name; at most `limit` (default and maximum 1000) per page, the next page in `Link: <…>; rel="next"`.',
      params: OrgParams,
      querystring: PageOnlyQuery,
      response: { 200: Type.Array(Site), 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse }
    }
  }, async (req, reply) => sendPage(req, reply, await service.listSites(req.params.orgId, { limit: req.query.limit ?? 1000, cursor: req.query.cursor }), siteJson))
}
