import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { sendPage } from '../../http/paging.js'
import { deviceJson } from './json.js'
import { CreateDeviceBody, Device, ErrorResponse, ListDevicesQuery, OrgParams } from './schemas.js'
import type { ManagementService } from './service.js'

const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse }

/** The sensor devices attached to an organization's units. */
export function deviceRoutes (fastify: FastifyInstance, service: ManagementService): void {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.post('/api/orgs/:orgId/devices', {
    schema: {
      tags: ['devices'],
      operationId: 'createDevice',
      summary: 'Register a sensor device on a unit',
      description: 'deviceEui is unique across all organizations (409 DUPLICATE_DEVICE_EUI).',
      params: OrgParams,
      body: CreateDeviceBody,
      response: { 201: Device, ...errors, 409: ErrorResponse }
    }
  }, async (req, reply) => {
    const device = await service.createDevice(req.params.orgId, req.body)
    return reply.code(201).send(deviceJson(device))
  })

  app.get('/api/orgs/:orgId/devices', {
    schema: {
      tags: ['devices'],
      operationId: 'listDevices',
      summary: "List the organization's devices",
      description: 'By device EUI; at most `limit` (default and maximum 1000) per page, the next page in `Link: <…>; rel="next"`.',
      params: OrgParams,
      querystring: ListDevicesQuery,
      response: { 200: Type.Array(Device), ...errors }
    }
  }, async (req, reply) => sendPage(req, reply, await service.listDevices(req.params.orgId, { ...req.query, limit: req.query.limit ?? 1000 }), deviceJson))
}
