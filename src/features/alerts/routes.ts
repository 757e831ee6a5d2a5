import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Alert as AlertRow } from '../../db/schema.js'
import { Alert, AlertParams, ErrorResponse, ListAlertsQuery, OrgParams, type AlertJson } from './schemas.js'
import { sendPage } from '../../http/paging.js'
import type { AlertService } from './service.js'

const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse }

export function alertJson (a: AlertRow): AlertJson {
  return {
    id: a.id,
    organizationId: a.organizationId,
    unitId: a.unitId,
    type: a.type,
    severity: a.severity,
    status: a.status,
    triggerTemperature: a.triggerTemperature,
    threshold: a.threshold,
    triggeredAt: a.triggeredAt.toISOString(),
    acknowledgedAt: a.acknowledgedAt?.toISOString() ?? null,
    resolvedAt: a.resolvedAt?.toISOString() ?? null
  }
}

/** An organization's alerts: list (any role), acknowledge and resolve (manager or owner). */
export function alertRoutes (fastify: FastifyInstance, service: AlertService): void {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.get('/api/orgs/:orgId/alerts', {
    schema: {
      tags: ['alerts'],
      operationId: 'listAlerts',
      summary: "List the organization's alerts, newest first",
      description: 'At most `limit` (default and maximum 1000) per page, the next page in `Link: <…>; rel="next"`.',
      params: OrgParams,
      querystring: ListAlertsQuery,
      response: { 200: Type.Array(Alert), ...errors }
    }
  }, async (req, reply) => sendPage(req, reply, await service.list(req.params.orgId, req.query), alertJson))

  app.post('/api/orgs/:orgId/alerts/:alertId/acknowledge', {
    schema: {
      tags: ['alerts'],
      operationId: 'acknowledgeAlert',
      summary: 'Acknowledge an alert',
      description: 'active → acknowledged. Acknowledging an acknowledged alert returns it unchanged; a resolved one is 409 ALERT_RESOLVED.',
      params: AlertParams,
      response: { 200: Alert, ...errors, 409: ErrorResponse }
    }
  }, async (req) => alertJson(await service.acknowledge(req.params.orgId, req.params.alertId)))

  app.post('/api/orgs/:orgId/alerts/:alertId/resolve', {
    schema: {
      tags: ['alerts'],
      operationId: 'resolveAlert',
      summary: 'Resolve an alert',
      description: 'active or acknowledged → resolved. Resolving a resolved alert returns it unchanged.',
      params: AlertParams,
      response: { 200: Alert, ...errors }
    }
  }, async (req) => alertJson(await service.resolve(req.params.orgId, req.params.alertId)))
}
