import { randomBytes } from 'node:crypto'
import { inject } from 'vitest'
import { createDatabase, type Database } from '../../src/infra/postgres.js'
import { adminQuery as run, databaseUrlOf } from '../../src/lib/pg-admin.js'

/** The server the tests create their databases on (trust auth locally; override with TEST_DATABASE_URL). */
export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres'
export const databaseUrl = (name: string) => databaseUrlOf(adminUrl, name)
export const adminQuery = (text: string) => run(adminUrl, text)

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
