import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sql } from 'drizzle-orm'
import { rows } from '../../src/infra/postgres.js'
import { parseRebuildArgs } from '../../src/commands/rollups.js'
import { createTestDatabase, type TestDatabase } from '../helpers/db.js'

const root = path.resolve(import.meta.dirname, '../..')
const run = promisify(execFile)

async function coldboard (args: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/coldboard.js', ...args], { cwd: root, env: { ...process.env, ...env } })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

describe('rollups rebuild flags', () => {
  it('reads --org, --from and --to', () => {
    expect(parseRebuildArgs(['rebuild'])).toEqual({ orgId: undefined, from: undefined, to: undefined })
    expect(parseRebuildArgs(['rebuild', '--org', '00000000-0000-4000-8000-000000000001', '--from', '2026-01-01', '--to', '2026-02-01T00:00:00Z']))
      .toEqual({ orgId: '00000000-0000-4000-8000-000000000001', from: new Date('2026-01-01T00:00:00Z'), to: new Date('2026-02-01T00:00:00Z') })
  })

  it.each([
    [[], /usage: coldboard rollups rebuild/],
    [['rebuild', '--org', 'acme'], /--org must be an organization id/],
    [['rebuild', '--from', 'yesterday'], /--from must be an ISO 8601 date/],
    [['rebuild', '--from', '2026-02-01', '--to', '2026-01-01'], /--from must be before --to/],
    [['rebuild', '--bogus'], /rollups: Unknown option '--bogus'/]
  ])('rejects %j with a clear message', (argv, message) => {
    expect(() => parseRebuildArgs(argv)).toThrow(message)
  })
})

describe('coldboard rollups rebuild and coldboard maintain (child processes)', () => {
  let database: TestDatabase
  beforeAll(async () => { database = await createTestDatabase() })
  afterAll(async () => { await database?.drop() })

  it('rebuilds a seeded organization to the same rollups, and maintain prints what it created and dropped', async () => {
    const seeded = await coldboard(['seed', '--units', '3', '--hours', '3', '--interval-seconds', '120', '--seed', '4'], { DATABASE_URL: database.url })
    expect(seeded.code).toBe(0)
    const orgId = seeded.stdout.trim()
    const snapshot = async () => rows<Record<string, unknown>>(database.db, sql`
      select unit_id, bucket::text, readings, above, below, temp_sum::text, temp_min::text, temp_max::text
      from reading_rollups_1h where organization_id = ${orgId} order by unit_id, bucket`)
    const before = await snapshot()
    const [total] = await rows<{ n: number }>(database.db, sql`select coalesce(sum(readings), 0)::int as n from reading_rollups_1d where organization_id = ${orgId}`)
    expect(total!.n).toBe(3 * 90)

    const rebuilt = await coldboard(['rollups', 'rebuild', '--org', orgId], { DATABASE_URL: database.url })
    expect(rebuilt.code).toBe(0)
    expect(rebuilt.stdout.trim()).toMatch(new RegExp(`^rebuilt ${orgId} \\[the beginning, now\\): 270 readings in \\d+ 5-minute buckets$`))
    expect(await snapshot()).toEqual(before)

    const maintained = await coldboard(['maintain'], { DATABASE_URL: database.url, READINGS_RETENTION_DAYS: '400' })
    expect(maintained.code).toBe(0)
    const lines = maintained.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^created (no partition|sensor_readings_\d{4}_\d{2}(, sensor_readings_\d{4}_\d{2})*)/)
    expect(lines).toContain('dropped no partition (none entirely older than READINGS_RETENTION_DAYS)')
    expect(lines.some((l) => l.startsWith('pruned rollups: '))).toBe(true)
    const again = await coldboard(['maintain'], { DATABASE_URL: database.url })
    expect(again.stdout.split('\n')[0]).toBe('created no partition (every month up to two ahead has one)')
  })
})
