import type { FastifyReply, FastifyRequest } from 'fastify'
import { sql, type AnyColumn, type SQL } from 'drizzle-orm'
import { ValidationError } from '../errors.js'

/** One page of a list: the rows, and the key of the last one when more follow. */
export interface Page<T> { items: T[], next: string | null }

/**
 * Keyset paging: `limit + 1` rows are read in the list's order; the extra row only says that more follow, and the
 * cursor is the list's name and the sort key of the last row returned (opaque to clients: base64url of its JSON).
 * Timestamps travel as whole microseconds since the epoch (`microsOf`), PostgreSQL's own precision: a millisecond
 * ISO string would put a row stored with microseconds after its own cursor.
 */
export function toPage<T> (rows: T[], limit: number, list: string, key: (row: T) => unknown[]): Page<T> {
  if (rows.length <= limit) return { items: rows, next: null }
  const items = rows.slice(0, limit)
  return { items, next: Buffer.from(JSON.stringify([list, ...key(items.at(-1)!)])).toString('base64url') }
}

/** The sort key a cursor of `list` carries; a 400 when it is not one of this list (`check` validates each value). */
export function readCursor (cursor: string | undefined, list: string, check: Array<(v: unknown) => boolean>): unknown[] | null {
  if (cursor === undefined) return null
  let values: unknown
  try {
    values = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    values = null
  }
  if (!Array.isArray(values) || values[0] !== list || values.length !== check.length + 1 || !check.every((ok, i) => ok(values[i + 1]))) {
    throw new ValidationError('querystring/cursor: not a cursor of this list')
  }
  return values.slice(1)
}

/** Longer than any name or EUI the API accepts, in UTF-16 units; no NUL (PostgreSQL cannot compare it). */
export const isText = (v: unknown): v is string => typeof v === 'string' && v.length <= 1024 && !v.includes('\u0000')
export const isUuid = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)
/** Microseconds since the epoch, as text (a bigint; years 1900–9999 fit). */
export const isMicros = (v: unknown): v is string => typeof v === 'string' && /^-?\d{1,17}$/.test(v)

/** Sends the page's rows as the body (still an array) and announces the next page in `Link: <…>; rel="next"`. */
export function sendPage<T, J> (req: FastifyRequest, reply: FastifyReply, page: Page<T>, toJson: (row: T) => J): J[] {
  if (page.next !== null) {
    const url = new URL(req.url, 'http://placeholder')
    url.searchParams.set('cursor', page.next)
    void reply.header('link', `<${url.pathname}${url.search}>; rel="next"`)
  }
  return page.items.map(toJson)
}

/** A timestamptz column as whole microseconds since the epoch (text), for a cursor. */
export const microsOf = (column: AnyColumn): SQL<string> => sql<string>`(extract(epoch from ${column}) * 1000000)::bigint::text`
/** The exact instant of a `microsOf` value, in SQL. */
export const fromMicros = (micros: string): SQL => sql`(timestamptz 'epoch' + ${micros}::bigint * interval '1 microsecond')`
