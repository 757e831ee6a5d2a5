import pg from 'pg'
import { DASHBOARD_SQL_TAG } from '../../src/features/dashboard/queries.js'

export interface PgSnapshot {
  atMs: number
  /** Transactions (commits + rollbacks); a statement outside a transaction is one. */
  transactions: number
  /** Rows read: tup_returned (scanned) + tup_fetched (fetched by index). */
  rowsRead: number
  rowsWritten: number
  /** pg_stat_statements only: calls of the dashboard's statements (DASHBOARD_SQL_TAG), and of the others. */
  readStatements: number | null
  writeStatements: number | null
  /** pg_stat_statements only: statements it evicted so far (pg_stat_statements_info.dealloc): their calls are lost. */
  evicted: number | null
}

export type PgStatsSource = 'pg_stat_statements' | 'pg_stat_database'

/**
 * PostgreSQL's own statistics for one database: pg_stat_statements when the server has it loaded (the benchmark's
 * private server does: bench/lib/postgres-server.ts; a shared one needs shared_preload_libraries and so a restart),
 * pg_stat_database otherwise. With pg_stat_statements the dashboard's reads are counted exactly: every statement the
 * dashboard runs starts with DASHBOARD_SQL_TAG, which pg_stat_statements keeps in its text (its queryid ignores
 * comments, and no other statement of the service has the same parse tree).
 * Cumulative statistics reach the views when a backend flushes them (at most about a second late while busy),
 * so deltas over a window of tens of seconds are accurate to a second's work at each edge.
 */
export async function createPgStats (opts: { adminUrl: string, database: string }) {
  const admin = new pg.Client({ connectionString: opts.adminUrl })
  await admin.connect()
  let source: PgStatsSource = 'pg_stat_database'
  let note: string
  try {
    // The view counts every database's statements; the snapshots read it from the admin connection's database.
    await admin.query('create extension if not exists pg_stat_statements')
    await admin.query('select 1 from pg_stat_statements limit 1')
    source = 'pg_stat_statements'
    note = `pg_stat_statements: calls of the dashboard's statements in the bench database (those starting with ${DASHBOARD_SQL_TAG})`
  } catch (err) {
    note = `pg_stat_statements unavailable (${(err as Error).message.split('\n')[0]}); pg_stat_database transactions and rows of the bench database, ` +
      'with the write-only rate (measured while only the writers ran) subtracted to isolate dashboard reads'
  }
  const [{ oid }] = (await admin.query<{ oid: number }>('select oid from pg_database where datname = $1', [opts.database])).rows as [{ oid: number }]

  async function snapshot (): Promise<PgSnapshot> {
    await admin.query('select pg_stat_clear_snapshot()')
    const { rows: [d] } = await admin.query<Record<string, string>>(`
      select xact_commit + xact_rollback as transactions, tup_returned + tup_fetched as rows_read,
        tup_inserted + tup_updated + tup_deleted as rows_written
      from pg_stat_database where datid = $1`, [oid])
    let reads: number | null = null
    let writes: number | null = null
    let evicted: number | null = null
    if (source === 'pg_stat_statements') {
      const { rows: [s] } = await admin.query<Record<string, string>>(`
        select coalesce(sum(calls) filter (where dashboard), 0) as reads, coalesce(sum(calls) filter (where not dashboard), 0) as writes,
          (select dealloc from pg_stat_statements_info) as evicted
        from (select calls, starts_with(query, $2) as dashboard from pg_stat_statements where dbid = $1) s`, [oid, DASHBOARD_SQL_TAG])
      reads = Number(s!.reads)
      writes = Number(s!.writes)
      evicted = Number(s!.evicted)
    }
    return {
      atMs: performance.now(),
      transactions: Number(d!.transactions),
      rowsRead: Number(d!.rows_read),
      rowsWritten: Number(d!.rows_written),
      readStatements: reads,
      writeStatements: writes,
      evicted
    }
  }

  return { source, note, snapshot, close: () => admin.end() }
}
export type PgStats = Awaited<ReturnType<typeof createPgStats>>

export interface PgRates {
  seconds: number
  transactionsPerSecond: number
  rowsReadPerSecond: number
  /** pg_stat_statements only: the dashboard's statements per second. */
  readStatementsPerSecond: number | null
  /** pg_stat_statements only: statements evicted in the window (0 unless it overflowed pg_stat_statements.max). */
  evictedStatements: number | null
}

export function rates (a: PgSnapshot, b: PgSnapshot): PgRates {
  const seconds = (b.atMs - a.atMs) / 1000
  const per = (x: number) => Math.round((x / seconds) * 10) / 10
  return {
    seconds: Math.round(seconds * 10) / 10,
    transactionsPerSecond: per(b.transactions - a.transactions),
    rowsReadPerSecond: per(b.rowsRead - a.rowsRead),
    readStatementsPerSecond: a.readStatements === null || b.readStatements === null ? null : per(b.readStatements - a.readStatements),
    evictedStatements: a.evicted === null || b.evicted === null ? null : b.evicted - a.evicted
  }
}
