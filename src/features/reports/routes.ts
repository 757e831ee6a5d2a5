import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { complianceCsv } from './csv.js'
import { ComplianceQuery, ComplianceReport, ErrorBody, OrgParams } from './schemas.js'
import { MAX_REPORT_DAYS } from './service.js'

export async function reportsRoutes (app: FastifyInstance): Promise<void> {
  const r = app.withTypeProvider<TypeBoxTypeProvider>()

  r.get('/api/orgs/:orgId/reports/compliance', {
    schema: {
      tags: ['reports'],
      operationId: 'getComplianceReport',
      summary: 'Temperature compliance per unit',
      description: 'For every active unit of the organization, ordered by name: the readings recorded in [from, to), ' +
        'how many were inside the thresholds the unit had when each was recorded, the percentage, the temperature ' +
        'excursion alerts triggered in the window, the lowest and highest temperature, and the same per UTC day. ' +
        `Defaults to the last 24 h; the window may span at most ${MAX_REPORT_DAYS} days. \`format=csv\` answers the daily ` +
        'rows as a spreadsheet-ready CSV. Always read from the database (x-cache: bypass); a few reports at a time ' +
        'per organization (429 with Retry-After beyond), each within a time budget (503 REPORT_TIMEOUT beyond).',
      params: OrgParams,
      querystring: ComplianceQuery,
      response: {
        200: {
          description: 'The report (application/json), or its daily rows as text/csv with format=csv',
          content: {
            'application/json': { schema: ComplianceReport },
            'text/csv': { schema: { type: 'string' } }
          }
        },
        400: ErrorBody,
        401: ErrorBody,
        403: ErrorBody,
        404: ErrorBody,
        429: ErrorBody,
        503: ErrorBody
      }
    }
  }, async (req, reply) => {
    void reply.header('x-cache', 'bypass')
    const release = app.reports.acquire(req.params.orgId)
    if (!release) {
      return reply.code(429).header('retry-after', 1).send({
        error: { code: 'RATE_LIMITED', message: 'too many reports of this organization at once; retry in a moment' }
      })
    }
    try {
      const report = await app.reports.compliance(req.params.orgId, req.query)
      if (req.query.format !== 'csv') return report
      const name = `compliance-${report.from.slice(0, 10)}-${report.to.slice(0, 10)}.csv`
      return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}"`).send(complianceCsv(report))
    } finally {
      release()
    }
  })
}
