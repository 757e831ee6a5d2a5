import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { ComplianceQuery, ComplianceReport, ErrorBody, OrgParams } from './schemas.js'

export async function reportsRoutes (app: FastifyInstance): Promise<void> {
  const r = app.withTypeProvider<TypeBoxTypeProvider>()

  r.get('/api/orgs/:orgId/reports/compliance', {
    schema: {
      tags: ['reports'],
      operationId: 'getComplianceReport',
      summary: 'Temperature compliance per unit',
      description: 'For every active unit of the organization, ordered by name: the readings recorded in [from, to), ' +
        'how many were inside the unit\'s thresholds, the percentage, and the temperature excursion alerts triggered ' +
        'in the window. Defaults to the last 24 h; the window may span at most 93 days. Always read from the database ' +
        '(x-cache: bypass).',
      params: OrgParams,
      querystring: ComplianceQuery,
      response: { 200: ComplianceReport, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody }
    }
  }, async (req, reply) => {
    void reply.header('x-cache', 'bypass')
    return app.reports.compliance(req.params.orgId, req.query)
  })
}
