import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { sql } from 'drizzle-orm'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import pg from 'pg'
import * as schema from '../db/schema.js'

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>
/** A transaction handle or the database itself: what a service method that writes accepts. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0]
export type DbOrTx = Db | Tx

export interface Database {
  db: Db
  kind: 'pg' | 'pglite'
  /** Where the embedded data lives (PGlite only). */
  dataDir?: string
  migrate (): Promise<void>
  ping (): Promise<void>
  close (): Promise<void>
}

/** Advisory lock key for migrations ('cold' in ASCII). */
const MIGRATION_LOCK = 0x636f6c64

export const migrationsFolder = fileURLToPath(new URL('../db/migrations', import.meta.url))

export interface DatabaseOptions {
  databaseUrl?: string
  dataDir: string
  /** PGlite only: keep everything in memory (tests). */
  inMemory?: boolean
  poolMax?: number
  /** pg only: how long a query waits for a pooled connection before failing (a 503, never a hang). */
  acquireTimeoutMs?: number
  /** pg only: the longest a statement may run (0: no limit). Migrations are exempt. */
  statementTimeoutMs?: number
}

/** pg when a URL is given, otherwise embedded PGlite in `<dataDir>/data`. */
export async function createDatabase (opts: DatabaseOptions): Promise<Database> {
  if (opts.databaseUrl) {
    // JIT compilation costs 100 ms–2 s on the larger dashboard and report scans and never pays off for them.
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: opts.poolMax ?? 10,
      connectionTimeoutMillis: opts.acquireTimeoutMs ?? 0,
      options: `-c jit=off -c statement_timeout=${opts.statementTimeoutMs ?? 0}`
    })
    // An idle client error (server restart) must not crash the process; the next query reconnects.
    pool.on('error', () => {})
    const db = drizzlePg(pool, { schema }) as unknown as Db
    let closed = false
    return {
      db,
      kind: 'pg',
      // On a connection of its own, without a statement timeout (a migration may rewrite a large table), and
      // serialised across processes (several instances starting at once) by a session advisory lock.
      migrate: async () => {
        const client = new pg.Client({ connectionString: opts.databaseUrl, options: '-c jit=off -c statement_timeout=0' })
        await client.connect()
        try {
          await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK])
          await migratePg(drizzlePg(client, { schema }) as never, { migrationsFolder })
        } finally {
          await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {})
          await client.end()
        }
      },
      ping: async () => { await pool.query('select 1') },
      close: async () => { if (!closed) { closed = true; await pool.end() } }
    }
  }
  const { PGlite } = await import('@electric-sql/pglite')
  const dataDir = opts.inMemory ? undefined : path.resolve(opts.dataDir, 'data')
  if (dataDir) mkdirSync(dataDir, { recursive: true })
  const client = new PGlite(dataDir)
  await client.waitReady
  const db = drizzlePglite(client, { schema }) as unknown as Db
  let closed = false
  return {
    db,
    kind: 'pglite',
    dataDir,
    migrate: () => migratePglite(db as never, { migrationsFolder }),
    ping: async () => { await db.execute(sql`select 1`) },
    close: async () => { if (!closed) { closed = true; await client.close() } }
  }
}

/**
 * Values as one PostgreSQL array literal (`{a,b}`), to pass as a single parameter cast to an array type
 * (`${arrayLiteral(ids)}::uuid[]`): the statement's text is the same whatever the count, and the cast's input
 * function rejects anything that is not such a value. For values without commas, braces or quotes (ids, numbers).
 */
export function arrayLiteral (values: readonly string[]): string {
  return '{' + values.join(',') + '}'
}

/** Rows of a raw query on either driver. */
export async function rows<T> (db: DbOrTx, query: ReturnType<typeof sql>): Promise<T[]> {
  const res = await db.execute(query) as unknown as { rows: T[] }
  return res.rows
}
