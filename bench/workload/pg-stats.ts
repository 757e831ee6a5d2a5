import pg from 'pg'

export interface PgSnapshot {
  atMs: number
  /** Transactions (commits + rollbacks); a statement outside a transaction is one. */
  transactions: number
  /** Rows read: tup_returned (scanned) + tup_fetched (fetched by index). */
  rowsRead: number
  rowsWritten: number
  /** pg_stat_statements only: calls of statements that read only, and of the others. */
  readStatements: number | null
  writeStatements: number | null
}

export type PgStatsSource = 'pg_stat_statements' | 'pg_stat_database'

/**
 * PostgreSQL's own statistics for one database: pg_stat_statements when the server has it loaded
 * (shared_preload_libraries; it needs a restart, which a benchmark must not do), pg_stat_database otherwise.
 * Cumulative statistics reach the views when a backend flushes them (at most about a second late while busy),
 * so deltas over a window of tens of seconds are accurate to a second's work at each edge.
 */
export async function createPgStats (opts: { adminUrl: string, databaseUrl: string, database: string }) {
  const admin = new pg.Client({ connectionString: opts.adminUrl })
  await admin.connect()
  let source: PgStatsSource = 'pg_stat_database'
  let note: string
  const inDb = new pg.Client({ connectionString: opts.databaseUrl })
  await inDb.connect()
  try {
    await inDb.query('create extension if not exists pg_stat_statements')
    await inDb.query('select 1 from pg_stat_statements limit 1')
    source = 'pg_stat_statements'
    note = 'pg_stat_statements: statement calls in the bench database, split into read-only statements (SELECT/WITH without INSERT/UPDATE/DELETE) and the rest'
  } catch (err) {
    note = `pg_stat_statements unavailable (${(err as Error).message.split('\n')[0]}); pg_stat_database transactions and rows of the bench database, ` +
      'with the write-only rate (measured while only the writers ran) subtracted to isolate dashboard reads'
  } finally {
    await inDb.end()
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
    if (source === 'pg_stat_statements') {
      const { rows: [s] } = await admin.query<Record<string, string>>(`
        select coalesce(sum(calls) filter (where ro), 0) as reads, coalesce(sum(calls) filter (where not ro), 0) as writes
        from (select calls, (query ~* '^\\s*(select|with)\\M' and query !~* '\\m(insert|update|delete)\\M') as ro
              from pg_stat_statements where dbid = $1) s`, [oid])
      reads = Number(s!.reads)
      writes = Number(s!.writes)
    }
    return {
      atMs: performance.now(),
      transactions: Number(d!.transactions),
      rowsRead: Number(d!.rows_read),
      rowsWritten: Number(d!.rows_written),
      readStatements: reads,
      writeStatements: writes
    }
  }

  return { source, note, snapshot, close: () => admin.end() }
}
export type PgStats = Awaited<ReturnType<typeof createPgStats>>

export interface PgRates { seconds: number, transactionsPerSecond: number, rowsReadPerSecond: number, readStatementsPerSecond: number | null }

export function rates (a: PgSnapshot, b: PgSnapshot): PgRates {
  const seconds = (b.atMs - a.atMs) / 1000
  const per = (x: number) => Math.round((x / seconds) * 10) / 10
  return {
    seconds: Math.round(seconds * 10) / 10,
    transactionsPerSecond: per(b.transactions - a.transactions),
    rowsReadPerSecond: per(b.rowsRead - a.rowsRead),
    readStatementsPerSecond: a.readStatements === null || b.readStatements === null ? null : per(b.readStatements - a.readStatements)
  }
}
