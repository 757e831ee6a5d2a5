import { randomBytes } from 'node:crypto'
import { inject } from 'vitest'
import { createDatabase, type Database } from '../../src/infra/postgres.js'
import { adminQuery, databaseUrl } from './pg-admin.js'

export interface TestDatabase extends Database {
  url: string
  /** Closes the connections and drops the database. */
  drop (): Promise<void>
}

/** A fresh, migrated PostgreSQL database of this test file's own, cloned from the run's template. */
export async function createTestDatabase (opts: { poolMax?: number } = {}): Promise<TestDatabase> {
  const name = `cb_t_${randomBytes(6).toString('hex')}`
  await adminQuery(`CREATE DATABASE ${name} TEMPLATE ${inject('templateDatabase')}`)
  const url = databaseUrl(name)
  const database = await createDatabase({ databaseUrl: url, dataDir: '.coldboard-test', poolMax: opts.poolMax })
  return {
    ...database,
    url,
    async drop () {
      await database.close()
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    }
  }
}

/** An in-memory embedded (PGlite) database, migrated. */
export async function createPgliteTestDatabase (): Promise<Database> {
  const database = await createDatabase({ dataDir: '.coldboard-test', inMemory: true })
  await database.migrate()
  return database
}

/** The two database backends that the embedded path and production use; iterate key tests over both. */
export const backends: Array<{ name: 'postgres' | 'pglite', create: () => Promise<Database & { drop?: () => Promise<void> }> }> = [
  { name: 'postgres', create: createTestDatabase },
  { name: 'pglite', create: createPgliteTestDatabase }
]

/** Closes (and for PostgreSQL drops) a database made by `backends[i].create()`. */
export async function disposeDatabase (database: Database & { drop?: () => Promise<void> }): Promise<void> {
  if (database.drop) await database.drop()
  else await database.close()
}
