import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { sql, type SQL } from 'drizzle-orm'
import { PgDialect, type PgDatabase, type PgQueryResultHKT } from 'drizzle-orm/pg-core'
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

/**
 * A transaction whose statements go several to a round trip: each `send` is one simple-protocol query (the first
 * one carries the BEGIN), and the statements `work` returns go with the COMMIT. Each statement still takes its own
 * snapshot (READ COMMITTED), exactly as if sent one by one; parameters are inlined as literals
 * (standard_conforming_strings is on for every connection), so pass timestamps as ISO text.
 */
export interface BatchTx {
  /** Runs these statements in order in one round trip; resolves to each one's rows. */
  send (statements: SQL[]): Promise<Array<Array<Record<string, unknown>>>>
}
export type BatchWork<T> = (tx: BatchTx) => Promise<{ value: T, beforeCommit?: SQL[] }>

export interface Database {
  db: Db
  kind: 'pg' | 'pglite'
  /** Where the embedded data lives (PGlite only). */
  dataDir?: string
  /**
   * Runs `work` in a transaction of its own, sending its statements several to a round trip (BatchTx). On the
   * write path a round trip costs the service a syscall and PostgreSQL a wakeup: a unit's evaluation takes two
   * instead of five. A failure rolls it back.
   */
  batch<T> (work: BatchWork<T>): Promise<T>
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
    // standard_conforming_strings is PostgreSQL's default; it is set here because BatchTx's inlined literals rely on it.
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: opts.poolMax ?? 10,
      connectionTimeoutMillis: opts.acquireTimeoutMs ?? 0,
      options: `-c jit=off -c standard_conforming_strings=on -c statement_timeout=${opts.statementTimeoutMs ?? 0}`
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
      batch: async (work) => {
        const client = await pool.connect()
        let begun = false
        const run = async (statements: string[]) => {
          const text = (begun ? [] : ['BEGIN']).concat(statements).join(';\n')
          const skip = begun ? 0 : 1
          begun = true
          const res = await client.query(text) as unknown as pg.QueryResult | pg.QueryResult[]
          return (Array.isArray(res) ? res : [res]).slice(skip).map((r) => r.rows as Array<Record<string, unknown>>)
        }
        try {
          const { value, beforeCommit = [] } = await work({ send: (statements) => run(statements.map(inline)) })
          await run([...beforeCommit.map(inline), 'COMMIT'])
          client.release()
          return value
        } catch (err) {
          // A statement that failed left the transaction aborted (the rest of its round trip was skipped).
          let broken: Error | undefined
          if (begun) await client.query('ROLLBACK').catch((e: Error) => { broken = e })
          client.release(broken)
          throw err
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
    // In process: no round trip to save, but the same statements, in one transaction that holds PGlite's lock.
    batch: (work) => client.transaction(async (tx) => {
      const run = async (statements: SQL[]) => (await tx.exec(statements.map(inline).join(';\n'))).map((r) => r.rows as Array<Record<string, unknown>>)
      const { value, beforeCommit = [] } = await work({ send: run })
      if (beforeCommit.length > 0) await run(beforeCommit)
      return value
    }),
    ping: async () => { await db.execute(sql`select 1`) },
    close: async () => { if (!closed) { closed = true; await client.close() } }
  }
}

const dialect = new PgDialect()
/** A statement with its parameters inlined as literals (strings quoted by doubling, numbers as written). */
function inline (statement: SQL): string {
  return dialect.sqlToQuery(statement.inlineParams()).sql
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
