import { Type } from 'typebox'

// HTTP schemas shared by every feature, defined once: ids, dates, the error body, list paging.

/** A canonical UUID (8-4-4-4-12 hex digits): anything else in a path or a query is a 400, never a 500. */
export const Uuid = Type.String({ format: 'uuid', description: 'canonical UUID' })
/** RFC 3339 with a time zone, years 1900–9999 (src/http/validation.ts). */
export const DateTime = Type.String({ format: 'date-time' })
export const NullableDateTime = Type.Union([DateTime, Type.Null()])

export const OrgParams = Type.Object({ orgId: Uuid }, { additionalProperties: false })

/** Every error response: `{ error: { code, message } }` (src/errors.ts). */
export const ErrorResponse = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String() })
})

export const MAX_PAGE = 1000
/** Paging of the list endpoints: `limit` (default and maximum 1000) and the opaque `cursor` of a `Link: rel="next"`. */
export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: MAX_PAGE, description: `page size, at most ${MAX_PAGE}` })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, pattern: '^[A-Za-z0-9_-]+$', description: 'from the `Link: <…>; rel="next"` header of the previous page' }))
}
