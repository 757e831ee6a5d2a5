import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { ErrorResponse, IngestBody, IngestResult, MAX_READINGS } from './schemas.js'
import type { IngestionService } from './service.js'
import type { Evaluation } from '../evaluation/service.js'

/** POST /api/ingest/readings: devices push batches with an organization's API key. */
export function ingestionRoutes (fastify: FastifyInstance, service: IngestionService, evaluation: Evaluation): void {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.post('/api/ingest/readings', {
    // Each API key has a budget of RATE_LIMIT_MAX requests a minute (src/features/auth/index.ts). Bodies are
    // validated strictly app-wide: a sensor's `"temperature": null` is rejected, never stored as 0 °C.
    config: { auth: 'apiKey' },
    schema: {
      tags: ['ingestion'],
      operationId: 'ingestReadings',
      summary: 'Ingest a batch of sensor readings',
      description: `1–${MAX_READINGS} readings, all or nothing: one unknown device (or another organization's), ` +
        'one invalid value or a recordedAt more than 5 minutes ahead rejects the whole batch with 400 and stores nothing. ' +
        'Idempotent per (deviceEui, recordedAt): a repeated reading counts as a duplicate.',
      security: [{ apiKey: [] }],
      body: IngestBody,
      response: {
        202: IngestResult,
        400: ErrorResponse,
        401: ErrorResponse,
        413: ErrorResponse,
        415: ErrorResponse,
        429: ErrorResponse
      }
    }
  }, async (req, reply) => {
    const orgId = req.apiKey!.organizationId
    const stored = await service.storeReadings(orgId, req.body.readings)
    app.metrics.readingsIngested.inc(stored.accepted)
    app.metrics.readingsDuplicate.inc(stored.duplicates)
    // Durable now; the evaluation (state, alerts, events) goes to the queue, else runs inline.
    await evaluation.submit({ organizationId: orgId, unitIds: stored.unitIds })
    return reply.code(202).send({ accepted: stored.accepted, duplicates: stored.duplicates })
  })
}
