import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { sendPage } from '../../http/paging.js'
import { unitJson } from './json.js'
import { CreateUnitBody, ErrorResponse, ListUnitsQuery, OrgParams, Unit, UnitParams, UpdateUnitBody } from './schemas.js'
import type { ManagementService } from './service.js'

const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse }

/** An organization's refrigeration units. */
export function unitRoutes (fastify: FastifyInstance, service: ManagementService): void {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.post('/api/orgs/:orgId/units', {
    schema: {
      tags: ['units'],
      operationId: 'createUnit',
      summary: 'Create a unit in one of the organization\'s sites',
      description: 'tempMin must be lower than tempMax; both in °C between -100 and 100.',
      params: OrgParams,
      body: CreateUnitBody,
      response: { 201: Unit, ...errors }
    }
  }, async (req, reply) => {
    const unit = await service.createUnit(req.params.orgId, req.body)
    return reply.code(201).send(unitJson(unit))
  })

  app.get('/api/orgs/:orgId/units', {
    schema: {
      tags: ['units'],
      operationId: 'listUnits',
      summary: "List the organization's units",
      description: 'By name; at most `limit` (default and maximum 1000) per page, the next page in `Link: <…>; rel="next"`.',
      params: OrgParams,
      querystring: ListUnitsQuery,
      response: { 200: Type.Array(Unit), ...errors }
    }
  }, async (req, reply) => sendPage(req, reply, await service.listUnits(req.params.orgId, { ...req.query, limit: req.query.limit ?? 1000 }), unitJson))

  app.get('/api/orgs/:orgId/units/:unitId', {
    schema: {
      tags: ['units'],
      operationId: 'getUnit',
      summary: 'Get a unit',
      params: UnitParams,
      response: { 200: Unit, ...errors }
    }
  }, async (req) => unitJson(await service.getUnit(req.params.orgId, req.params.unitId)))

  app.patch('/api/orgs/:orgId/units/:unitId', {
    schema: {
      tags: ['units'],
      operationId: 'updateUnit',
      summary: 'Update a unit',
      description: 'Changing tempMin, tempMax or isActive re-evaluates the unit\'s state (and emits unitUpdate when it changes).',
      params: UnitParams,
      body: UpdateUnitBody,
      response: { 200: Unit, ...errors }
    }
  }, async (req) => unitJson(await service.updateUnit(req.params.orgId, req.params.unitId, req.body)))
}
