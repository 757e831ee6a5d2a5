import { and, desc, eq, ne, sql } from 'drizzle-orm'
import { alerts, type Alert } from '../../db/schema.js'
import { ConflictError, NotFoundError } from '../../errors.js'
import type { Db } from '../../infra/postgres.js'
import type { Clock } from '../../lib/clock.js'
import { alertEvent } from '../changes/events.js'
import type { ChangePipeline } from '../changes/pipeline.js'
import { fromMicros, isMicros, isUuid, microsOf, readCursor, toPage, type Page } from '../../http/paging.js'
import { MAX_PAGE } from '../../http/schemas.js'
import type { AlertFilter } from './schemas.js'

/**
 * Listing alerts and the two user actions on them. Repeating an action is harmless: acknowledging an
 * acknowledged alert, or resolving a resolved one, answers the alert unchanged and publishes nothing.
 * Acknowledging a resolved alert is a conflict (409 ALERT_RESOLVED): there is nothing left to acknowledge.
 */
export function createAlertService (opts: { db: Db, clock: Clock, changes: ChangePipeline }) {
  const { db, clock, changes } = opts

  async function find (orgId: string, alertId: string): Promise<Alert> {
    const [alert] = await db.select().from(alerts).where(and(eq(alerts.id, alertId), eq(alerts.organizationId, orgId)))
    if (!alert) throw new NotFoundError('alert')
    return alert
  }

  return {
    /** Newest first (by trigger time, then id); keyset paging. */
    async list (orgId: string, query: AlertFilter): Promise<Page<Alert>> {
      const limit = query.limit ?? MAX_PAGE
      const after = readCursor(query.cursor, 'alerts', [isMicros, isUuid])
      const rows = await db.select({ alert: alerts, at: microsOf(alerts.triggeredAt) }).from(alerts)
        .where(and(
          eq(alerts.organizationId, orgId),
          query.status ? eq(alerts.status, query.status) : undefined,
          query.unitId ? eq(alerts.unitId, query.unitId) : undefined,
          after ? sql`(${alerts.triggeredAt}, ${alerts.id}) < (${fromMicros(after[0] as string)}, ${after[1] as string}::uuid)` : undefined
        ))
        .orderBy(desc(alerts.triggeredAt), desc(alerts.id))
        .limit(limit + 1)
      const page = toPage(rows, limit, 'alerts', (r) => [r.at, r.alert.id])
      return { items: page.items.map((r) => r.alert), next: page.next }
    },

    /** active → acknowledged. */
    async acknowledge (orgId: string, alertId: string): Promise<Alert> {
      // Each change is one conditional UPDATE (its own transaction): a concurrent auto-resolve lands
      // either before it (409 here) or after it.
      const changed = await changes.commit(async (tx) => {
        const [row] = await tx.update(alerts).set({ status: 'acknowledged', acknowledgedAt: clock.now() })
          .where(and(eq(alerts.id, alertId), eq(alerts.organizationId, orgId), eq(alerts.status, 'active')))
          .returning()
        return { value: row, events: row ? [alertEvent('alertAcknowledged', row)] : [] }
      })
      if (changed) return changed
      const alert = await find(orgId, alertId)
      if (alert.status === 'resolved') throw new ConflictError('alert is already resolved', 'ALERT_RESOLVED')
      return alert
    },

    /** active | acknowledged → resolved. */
    async resolve (orgId: string, alertId: string): Promise<Alert> {
      const changed = await changes.commit(async (tx) => {
        const [row] = await tx.update(alerts).set({ status: 'resolved', resolvedAt: clock.now() })
          .where(and(eq(alerts.id, alertId), eq(alerts.organizationId, orgId), ne(alerts.status, 'resolved')))
          .returning()
        return { value: row, events: row ? [alertEvent('alertResolved', row)] : [] }
      })
      if (changed) return changed
      return find(orgId, alertId)
    }
  }
}
export type AlertService = ReturnType<typeof createAlertService>
