import { randomBytes } from 'node:crypto'
import { eq } from 'drizzle-orm'
import { apiKeys, devices, organizations, sites, unitThresholds, units, type Device, type Organization, type Site, type Unit } from '../../src/db/schema.js'
import type { Db } from '../../src/infra/postgres.js'
import { generateApiKey } from '../../src/features/auth/tokens.js'

export interface OrgFixture {
  org: Organization
  site: Site
  units: Unit[]
  devices: Device[]
  apiKey: string
}

/** Inserts an organization with one site, `units` fridges (2–8 °C by default), one device per unit and an API key. */
export async function createOrgFixture (db: Db, opts: {
  units?: number
  tempMin?: number
  tempMax?: number
  unitType?: Unit['unitType']
  createdAt?: Date
} = {}): Promise<OrgFixture> {
  const tag = randomBytes(5).toString('hex')
  const [org] = await db.insert(organizations).values({ name: `Org ${tag}`, slug: `org-${tag}` }).returning()
  const [site] = await db.insert(sites).values({ organizationId: org!.id, name: `Site ${tag}` }).returning()
  const n = opts.units ?? 2
  const createdAt = opts.createdAt ?? new Date()
  const unitRows = n === 0
    ? []
    : await db.insert(units).values(Array.from({ length: n }, (_, i) => ({
      organizationId: org!.id,
      siteId: site!.id,
      name: `Unit ${i + 1}`,
      unitType: opts.unitType ?? 'fridge' as const,
      tempMin: opts.tempMin ?? 2,
      tempMax: opts.tempMax ?? 8,
      createdAt,
      stateChangedAt: createdAt
    }))).returning()
  const deviceRows = unitRows.length === 0
    ? []
    : await db.insert(devices).values(unitRows.map((u, i) => ({
      organizationId: org!.id,
      unitId: u.id,
      deviceEui: `eui-${tag}-${i + 1}`,
      createdAt
    }))).returning()
  const { key, hash } = generateApiKey()
  await db.insert(apiKeys).values({ organizationId: org!.id, name: 'test', hash })
  return { org: org!, site: site!, units: unitRows, devices: deviceRows, apiKey: key }
}

/**
 * Gives a unit other thresholds as if it had always had them: the unit row and its history's first row (readings
 * are judged by the thresholds of their time, so a plain UPDATE of units would only change what comes next).
 */
export async function setThresholdsSinceCreation (db: Db, unitId: string, tempMin: number, tempMax: number): Promise<void> {
  await db.update(units).set({ tempMin, tempMax }).where(eq(units.id, unitId))
  await db.update(unitThresholds).set({ tempMin, tempMax }).where(eq(unitThresholds.unitId, unitId))
}
