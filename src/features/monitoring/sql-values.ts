import { getTableColumns } from 'drizzle-orm'
import type { PgTable } from 'drizzle-orm/pg-core'

/**
 * Raw-SQL values come back as text on node-postgres (drizzle keeps timestamps and numerics raw) and
 * partly typed on PGlite: these normalise both.
 */
export function asDate (v: unknown): Date {
  if (v instanceof Date) return v
  if (typeof v === 'number') return new Date(v)
  // '2024-05-01 10:00:00.123+00' → ISO 8601 ('+00' → '+00:00').
  const iso = String(v).replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')
  return new Date(iso)
}

/** A timestamptz parameter: ISO text cast in SQL, identical on both drivers. */
export function iso (d: Date): string {
  return d.toISOString()
}

/**
 * A table's row from its JSON form (`json_agg(t)` of the table's own columns: snake_case keys, timestamps as ISO
 * text), through each column's own driver mapping, as drizzle would have returned it from a select.
 */
export function fromJsonRow<T extends PgTable> (table: T, json: Record<string, unknown>): T['$inferSelect'] {
  const out: Record<string, unknown> = {}
  for (const [key, column] of Object.entries(getTableColumns(table))) {
    const v = json[column.name]
    out[key] = v === null || v === undefined ? null : column.mapFromDriverValue(v)
  }
  return out as T['$inferSelect']
}
