import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rows, type Database } from '../../src/infra/postgres.js'
import { createPgliteTestDatabase, createTestDatabase } from '../helpers/db.js'

/**
 * Database.batch (src/infra/postgres.ts): a transaction whose statements go several to a round trip, parameters
 * inlined as literals. What the evaluation of a unit relies on: each statement's rows in order, the writes sent with
 * the COMMIT committed with the rest or not at all, a literal stored exactly as given, and (on a server, where
 * transactions run concurrently) a statement that follows a lock in the same round trip seeing what was committed
 * while it waited.
 */
for (const backend of ['postgres', 'pglite'] as const) {
  describe(`Database.batch on ${backend}`, () => {
    let database: Database & { drop?: () => Promise<void> }

    beforeAll(async () => {
      database = backend === 'postgres' ? await createTestDatabase({ poolMax: 3 }) : await createPgliteTestDatabase()
      await database.db.execute(sql`CREATE TABLE batch_t (id int PRIMARY KEY, note text)`)
    })
    afterAll(async () => {
      if (database?.drop) await database.drop()
      else await database?.close()
    })

    const notes = async () => (await rows<{ id: number, note: string }>(database.db, sql`SELECT id, note FROM batch_t ORDER BY id`))

    it('answers each statement of a round trip with its own rows, and commits the statements returned with the work', async () => {
      await database.db.execute(sql`TRUNCATE batch_t`)
      const value = await database.batch(async (tx) => {
        const [inserted, counted] = await tx.send([
          sql`INSERT INTO batch_t VALUES (${1}, ${'one'}) RETURNING id`,
          sql`SELECT count(*)::int AS n FROM batch_t`
        ])
        return { value: { inserted, counted }, beforeCommit: [sql`INSERT INTO batch_t VALUES (${2}, ${'two'})`] }
      })
      expect(value).toEqual({ inserted: [{ id: 1 }], counted: [{ n: 1 }] })
      expect(await notes()).toEqual([{ id: 1, note: 'one' }, { id: 2, note: 'two' }])
    })

    it('stores an inlined literal exactly as given (quotes, backslashes, a statement separator, non-ASCII)', async () => {
      await database.db.execute(sql`TRUNCATE batch_t`)
      const hostile = "it's \\'; DROP TABLE batch_t; -- ° \\n ✓"
      await database.batch(async (tx) => {
        await tx.send([sql`INSERT INTO batch_t VALUES (${1}, ${hostile})`])
        return { value: undefined }
      })
      expect(await notes()).toEqual([{ id: 1, note: hostile }])
    })

    it('rolls everything back when a statement sent with the COMMIT fails, and the next batch works', async () => {
      await database.db.execute(sql`TRUNCATE batch_t`)
      await expect(database.batch(async (tx) => {
        await tx.send([sql`INSERT INTO batch_t VALUES (${1}, ${'kept?'})`])
        return { value: undefined, beforeCommit: [sql`INSERT INTO batch_t VALUES (${1}, ${'duplicate key'})`] }
      })).rejects.toThrow()
      expect(await notes()).toEqual([])
      await database.batch(async (tx) => {
        await tx.send([sql`INSERT INTO batch_t VALUES (${3}, ${'after'})`])
        return { value: undefined }
      })
      expect(await notes()).toEqual([{ id: 3, note: 'after' }])
    })

    it('rolls back when the work throws between round trips', async () => {
      await database.db.execute(sql`TRUNCATE batch_t`)
      await expect(database.batch(async (tx) => {
        await tx.send([sql`INSERT INTO batch_t VALUES (${1}, ${'written'})`])
        throw new Error('the work failed')
      })).rejects.toThrow('the work failed')
      expect(await notes()).toEqual([])
    })

    if (backend === 'postgres') {
      it('a statement after a lock in the same round trip sees what was committed while the lock was awaited', async () => {
        await database.db.execute(sql`TRUNCATE batch_t`)
        await database.db.execute(sql`INSERT INTO batch_t VALUES (${0}, ${'lock me'})`)
        let release!: () => void
        const holding = new Promise<void>((resolve) => { release = resolve })
        let locked!: () => void
        const isLocked = new Promise<void>((resolve) => { locked = resolve })
        // Holds the row's lock, and inserts a row that commits with the lock's release.
        const holder = database.db.transaction(async (tx) => {
          await tx.execute(sql`SELECT id FROM batch_t WHERE id = 0 FOR UPDATE`)
          await tx.execute(sql`INSERT INTO batch_t VALUES (${1}, ${'committed while waiting'})`)
          locked()
          await holding
        })
        await isLocked
        const batch = database.batch(async (tx) => {
          const [, seen] = await tx.send([
            sql`SELECT id FROM batch_t WHERE id = 0 FOR UPDATE`,
            sql`SELECT count(*)::int AS n FROM batch_t`
          ])
          return { value: seen }
        })
        // The batch is waiting for the lock (its connection is stuck on the first statement) before the holder commits.
        await waitUntil(async () => (await rows<{ n: number }>(database.db, sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`))[0]!.n === 1)
        release()
        await holder
        expect(await batch).toEqual([{ n: 2 }])
      })
    }
  })
}

async function waitUntil (check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await check()) {
    if (Date.now() > deadline) throw new Error('condition not reached')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
