import { Type, type Static } from 'typebox'

// TypeBox schemas for device ingestion: strict request validation and the OpenAPI document at /docs.

export const MAX_READINGS = 1000

export const Reading = Type.Object({
  deviceEui: Type.String({ minLength: 1, maxLength: 128 }),
  temperature: Type.Number({ minimum: -100, maximum: 100, description: '°C, stored with two decimals' }),
  recordedAt: Type.String({ format: 'date-time', description: 'When the device measured it (RFC 3339 with offset); at most 5 minutes ahead of the server clock' }),
  humidity: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: '% relative humidity' })),
  battery: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: '% battery' }))
}, { additionalProperties: false })
export type ReadingInput = Static<typeof Reading>

export const IngestBody = Type.Object({
  readings: Type.Array(Reading, { minItems: 1, maxItems: MAX_READINGS })
}, { additionalProperties: false })

export const IngestResult = Type.Object({
  accepted: Type.Integer({ description: 'Readings newly stored' }),
  duplicates: Type.Integer({ description: 'Readings already stored (same device and recordedAt), in this batch or before' })
})

export type IngestResultJson = Static<typeof IngestResult>

export { ErrorResponse } from '../../http/schemas.js'
