import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inArray } from 'drizzle-orm'
import { organizations, sensorReadings, units } from '../../src/db/schema.js'
import { parseSeedArgs } from '../../src/commands/seed.js'
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

describe('seed flags', () => {
  it('has defaults and reads every flag', () => {
    expect(parseSeedArgs([])).toEqual({ orgs: 1, units: 20, hours: 24, intervalSeconds: 60, sites: undefined, seed: undefined })
    expect(parseSeedArgs(['--orgs', '3', '--units', '7', '--hours', '2', '--interval-seconds', '30', '--sites', '2', '--seed', '5']))
      .toEqual({ orgs: 3, units: 7, hours: 2, intervalSeconds: 30, sites: 2, seed: 5 })
  })

  it.each([
    [['--orgs', '0'], /--orgs must be an integer from 1 to 10000, got "0"/],
    [['--units', '-3'], /--units/],
    [['--hours', '1.5'], /--hours must be an integer/],
    [['--interval-seconds', 'abc'], /--interval-seconds must be an integer/],
    [['--orgs', '10001'], /--orgs must be an integer from 1 to 10000/],
    [['--hours', '1', '--interval-seconds', '7200'], /longer than --hours/],
    [['--units', '2', '--sites', '3'], /--sites 3 is more than --units 2/],
    [['--orgs', '10000', '--units', '10000'], /readings is more than/],
    [['--hours', '8000', '--interval-seconds', '1'], /readings per unit is more than/],
    [['--bogus', '1'], /seed: Unknown option '--bogus'/]
  ])('rejects %j with a clear message', (argv, message) => {
    expect(() => parseSeedArgs(argv)).toThrow(message)
  })
})

describe('coldboard seed (child process)', () => {
  let database: TestDatabase
  beforeAll(async () => { database = await createTestDatabase() })
  afterAll(async () => { await database?.drop() })

  it('prints only the new organization ids on stdout and the progress on stderr', async () => {
    const res = await coldboard(['seed', '--orgs', '2', '--units', '3', '--hours', '1', '--interval-seconds', '300', '--seed', '9'], { DATABASE_URL: database.url })
    expect(res.code).toBe(0)
    const ids = res.stdout.trim().split('\n')
    expect(ids).toHaveLength(2)
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    expect(await database.db.select({ id: organizations.id }).from(organizations).where(inArray(organizations.id, ids))).toHaveLength(2)
    expect(await database.db.select({ id: units.id }).from(units).where(inArray(units.organizationId, ids))).toHaveLength(6)
    // Three units per organization: none goes offline, so every unit has its 12 readings.
    expect(await database.db.select({ id: sensorReadings.id }).from(sensorReadings).where(inArray(sensorReadings.organizationId, ids))).toHaveLength(72)
    expect(res.stderr).toMatch(/seeded 2 org\(s\), 72 readings in .* --seed 9 reproduces the data/)
  })

  it('exits 1 with a one-line reason for a bad flag, writing nothing', async () => {
    const res = await coldboard(['seed', '--units', 'many'], { DATABASE_URL: database.url })
    expect(res.code).toBe(1)
    expect(res.stdout).toBe('')
    expect(res.stderr.trim().split('\n')).toEqual(['coldboard: seed: --units must be an integer from 1 to 10000, got "many"'])
  })
})
