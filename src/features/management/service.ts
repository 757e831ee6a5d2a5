import { randomBytes } from 'node:crypto'
import { and, asc, eq, gt, sql, type SQL } from 'drizzle-orm'
import {
  devices, organizations, sites, unitThresholds, units,
  type Device, type Organization, type Site, type Unit, type UnitState
} from '../../db/schema.js'
import { ConflictError, NotFoundError, ValidationError } from '../../errors.js'
import type { Db, DbOrTx, Tx } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'
import type { ChangeEvent } from '../changes/events.js'
import type { ChangePipeline } from '../changes/pipeline.js'
import { isText, isUuid, readCursor, toPage, type Page } from '../../http/paging.js'

export interface PageRequest { limit: number, cursor?: string }
import type { CreateDeviceInput, CreateUnitInput, UpdateUnitInput } from './schemas.js'

export interface ManagementOptions {
  db: Db
  clock: Clock
  /** The write path: each write is a unit of work that invalidates its organization's dashboard after commit. */
  changes: ChangePipeline
  /** Recomputes a unit's state, inside the write's transaction, after its thresholds or isActive changed (monitoring). */
  reevaluateIn: (tx: Tx, orgId: string, unitId: string) => Promise<ChangeEvent[]>
  /** The rollups' side of a threshold change (src/features/rollups): the organization's lock, then the re-derivation. */
  rollups: {
    lockOrgIn: (tx: Tx, orgId: string) => Promise<void>
    rederiveUnitIn: (tx: Tx, orgId: string, unitId: string, validFrom: Date) => Promise<void>
  }
}

/**
 * Organizations, sites, units and devices. Every write is one unit of work on the write path and returns the
 * row it wrote; a write that changes what an organization's dashboard shows without an event of its own (a
 * unit created, a threshold edited) invalidates that organization whole. Ids that do not exist in the
 * organization are NotFoundError, never a foreign-key 500.
 */
export function createManagementService ({ db, clock, changes, reevaluateIn, rollups }: ManagementOptions) {
  async function unitInOrg (tx: DbOrTx, orgId: string, unitId: string, lock = false): Promise<Unit> {
    const query = tx.select().from(units).where(and(eq(units.id, unitId), eq(units.organizationId, orgId)))
    const [row] = lock ? await query.for('update') : await query
    if (!row) throw new NotFoundError('unit')
    return row
  }

  return {
    async createOrganization (input: { name: string, slug?: string }): Promise<Organization> {
      const name = input.name.trim()
      const slug = input.slug ?? slugify(name)
      try {
        // A new organization has nothing cached yet: no invalidation, no event.
        return await changes.commit(async (tx) => {
          const [row] = await tx.insert(organizations).values({ name, slug, createdAt: clock.now() }).returning()
          return { value: row! }
        })
      } catch (err) {
        if (isUniqueViolation(err)) throw new ConflictError(`an organization with slug "${slug}" already exists`, 'DUPLICATE_SLUG')
        throw err
      }
    },

    async createSite (orgId: string, input: { name: string }): Promise<Site> {
      return changes.commit(async (tx) => {
        await assertOrganization(tx, orgId)
        const [row] = await tx.insert(sites)
          .values({ organizationId: orgId, name: input.name.trim(), createdAt: clock.now() }).returning()
        return { value: row!, orgWide: [orgId] }
      })
    },

    /** By name, then id; `limit` rows after `cursor` (keyset paging). */
    async listSites (orgId: string, page: PageRequest): Promise<Page<Site>> {
      await assertOrganization(db, orgId)
      const after = readCursor(page.cursor, 'sites', [isText, isUuid])
      const rows = await db.select().from(sites)
        .where(and(eq(sites.organizationId, orgId), after ? sql`(${sites.name}, ${sites.id}) > (${after[0] as string}, ${after[1] as string}::uuid)` : undefined))
        .orderBy(asc(sites.name), asc(sites.id)).limit(page.limit + 1)
      return toPage(rows, page.limit, 'sites', (r) => [r.name, r.id])
    },

    async createUnit (orgId: string, input: CreateUnitInput): Promise<Unit> {
      const tempMin = round2(input.tempMin)
      const tempMax = round2(input.tempMax)
      assertThresholds(tempMin, tempMax)
      return changes.commit(async (tx) => {
        await assertOrganization(tx, orgId)
        const [site] = await tx.select({ id: sites.id }).from(sites)
          .where(and(eq(sites.id, input.siteId), eq(sites.organizationId, orgId)))
        if (!site) throw new NotFoundError('site')
        // A unit that never reports turns offline once it is older than the offline window, measured from here.
        const now = clock.now()
        const [row] = await tx.insert(units).values({
          organizationId: orgId,
          siteId: site.id,
          name: input.name.trim(),
          unitType: input.unitType,
          tempMin,
          tempMax,
          createdAt: now,
          stateChangedAt: now
        }).returning()
        return { value: row!, orgWide: [orgId] }
      })
    },

    /** By name, then id, optionally of one site or in one state; keyset paging. */
    async listUnits (orgId: string, filter: { siteId?: string, state?: UnitState } & PageRequest): Promise<Page<Unit>> {
      await assertOrganization(db, orgId)
      const after = readCursor(filter.cursor, 'units', [isText, isUuid])
      const where: SQL[] = [eq(units.organizationId, orgId)]
      if (filter.siteId) where.push(eq(units.siteId, filter.siteId))
      if (filter.state) where.push(eq(units.state, filter.state))
      if (after) where.push(sql`(${units.name}, ${units.id}) > (${after[0] as string}, ${after[1] as string}::uuid)`)
      const rows = await db.select().from(units).where(and(...where)).orderBy(asc(units.name), asc(units.id)).limit(filter.limit + 1)
      return toPage(rows, filter.limit, 'units', (r) => [r.name, r.id])
    },

    async getUnit (orgId: string, unitId: string): Promise<Unit> {
      return unitInOrg(db, orgId, unitId)
    },

    /**
     * Applies a partial update. When thresholds or isActive actually changed, the unit's state is re-evaluated
     * in the same transaction (unitUpdate if the state moved, alert events if alerts opened or closed), so the
     * row returned shows the resulting state and nothing is half-applied. A threshold change is recorded in
     * unit_thresholds from the clock's now on, and the unit's rollups from that day on are re-derived: readings
     * are judged by the thresholds of their time, before and after.
     */
    async updateUnit (orgId: string, unitId: string, patch: UpdateUnitInput): Promise<Unit> {
      return changes.commit(async (tx) => {
        // Before any row lock: the rollup lock is the first one every writer of rollups takes.
        if (patch.tempMin !== undefined || patch.tempMax !== undefined) await rollups.lockOrgIn(tx, orgId)
        const current = await unitInOrg(tx, orgId, unitId, true)
        const tempMin = patch.tempMin === undefined ? current.tempMin : round2(patch.tempMin)
        const tempMax = patch.tempMax === undefined ? current.tempMax : round2(patch.tempMax)
        assertThresholds(tempMin, tempMax)
        const isActive = patch.isActive ?? current.isActive
        const name = patch.name === undefined ? current.name : patch.name.trim()
        await tx.update(units).set({ name, tempMin, tempMax, isActive }).where(eq(units.id, current.id))
        if (tempMin !== current.tempMin || tempMax !== current.tempMax) {
          const validFrom = clock.now()
          await tx.insert(unitThresholds).values({ unitId: current.id, organizationId: orgId, validFrom, tempMin, tempMax })
            .onConflictDoUpdate({ target: [unitThresholds.unitId, unitThresholds.validFrom], set: { tempMin, tempMax } })
          await rollups.rederiveUnitIn(tx, orgId, current.id, validFrom)
        }
        const changed = tempMin !== current.tempMin || tempMax !== current.tempMax || isActive !== current.isActive
        const events = changed ? await reevaluateIn(tx, orgId, unitId) : []
        // Thresholds also change compliance and trend alarm states, which no event announces.
        return { value: await unitInOrg(tx, orgId, unitId), events, orgWide: [orgId] }
      })
    },

    async createDevice (orgId: string, input: CreateDeviceInput): Promise<Device> {
      try {
        return await changes.commit(async (tx) => {
          await assertOrganization(tx, orgId)
          const unit = await unitInOrg(tx, orgId, input.unitId)
          const [row] = await tx.insert(devices).values({
            organizationId: orgId,
            unitId: unit.id,
            deviceEui: input.deviceEui,
            battery: input.battery ?? null,
            createdAt: clock.now()
          }).returning()
          return { value: row!, orgWide: [orgId] }
        })
      } catch (err) {
        if (isUniqueViolation(err)) {
          throw new ConflictError(`a device with EUI "${input.deviceEui}" already exists`, 'DUPLICATE_DEVICE_EUI')
        }
        throw err
      }
    },

    /** By device EUI (unique), optionally of one unit; keyset paging. */
    async listDevices (orgId: string, filter: { unitId?: string } & PageRequest): Promise<Page<Device>> {
      await assertOrganization(db, orgId)
      const after = readCursor(filter.cursor, 'devices', [isText])
      const where: SQL[] = [eq(devices.organizationId, orgId)]
      if (filter.unitId) where.push(eq(devices.unitId, filter.unitId))
      if (after) where.push(gt(devices.deviceEui, after[0] as string))
      const rows = await db.select().from(devices).where(and(...where)).orderBy(asc(devices.deviceEui)).limit(filter.limit + 1)
      return toPage(rows, filter.limit, 'devices', (r) => [r.deviceEui])
    }
  }
}
export type ManagementService = ReturnType<typeof createManagementService>

async function assertOrganization (tx: DbOrTx, orgId: string): Promise<void> {
  const [row] = await tx.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, orgId))
  if (!row) throw new NotFoundError('organization')
}

function assertThresholds (tempMin: number, tempMax: number): void {
  if (tempMin >= tempMax) throw new ValidationError(`tempMin (${tempMin}) must be lower than tempMax (${tempMax})`)
}

// Temperatures are stored as numeric(6,2): compare what will be stored, not what was sent.
function round2 (n: number): number {
  return Math.round(n * 100) / 100
}

/** URL-safe slug from a display name; names without any latin letter or digit get a random one. */
export function slugify (name: string): string {
  const slug = name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9]+/g, '-').replace(/^-+/, '').slice(0, 63).replace(/-+$/, '')
  return slug || `org-${randomBytes(4).toString('hex')}`
}

// Drizzle wraps driver errors (DrizzleQueryError); the SQLSTATE sits somewhere on the cause chain.
function isUniqueViolation (err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === '23505') return true
  }
  return false
}
