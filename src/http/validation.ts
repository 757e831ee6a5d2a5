import { Ajv, type Options } from 'ajv'
import formatsModule from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'

export const canonicalUuid = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/

/** The earliest and latest years coldboard stores (PostgreSQL has no year 0; nothing cold-chain is older). */
export const MIN_YEAR = 1900
export const MAX_YEAR = 9999

/** RFC 3339 with a time zone, a real calendar date, and a year PostgreSQL can store. */
export function isDateTime (value: string): boolean {
  const m = rfc3339.exec(value)
  if (!m) return false
  const year = Number(m[1])
  if (year < MIN_YEAR || year > MAX_YEAR) return false
  const d = new Date(value)
  if (Number.isNaN(d.getTime())) return false
  // 2030-02-30 parses as March 2: the date must survive the round trip in its own offset.
  const [, , month, day] = m
  const offset = m[8]!.toUpperCase() === 'Z' ? 0 : (m[8]![0] === '-' ? -1 : 1) * (Number(m[8]!.slice(1, 3)) * 60 + Number(m[8]!.slice(4, 6)))
  const local = new Date(d.getTime() + offset * 60_000)
  return local.getUTCMonth() + 1 === Number(month) && local.getUTCDate() === Number(day)
}

// A CommonJS module: its default export is on `.default` under NodeNext.
const formatsPlugin = (formatsModule as unknown as { default: (ajv: Ajv) => Ajv }).default

function build (options: Options): Ajv {
  const ajv = new Ajv({ useDefaults: true, removeAdditional: false, allErrors: false, strict: false, ...options })
  formatsPlugin(ajv)
  // Stricter than ajv-formats: only the canonical form of an id (no urn:uuid:, no braces), and only dates
  // PostgreSQL can store. Every schema that says `format: uuid` or `format: date-time` gets these.
  ajv.addFormat('uuid', canonicalUuid)
  ajv.addFormat('date-time', { type: 'string', validate: isDateTime })
  return ajv
}

/**
 * Fastify's validator compiler for the whole app: request bodies are validated strictly (a wrong type is a
 * 400 naming the field, never coerced: `{"isActive": null}` must not deactivate a unit), while query strings,
 * path parameters and headers, which are text by nature, may coerce ("?limit=10").
 */
export function createValidatorCompiler (): FastifySchemaCompiler<unknown> {
  const strict = build({ coerceTypes: false })
  const coercing = build({ coerceTypes: 'array' })
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object)
}
