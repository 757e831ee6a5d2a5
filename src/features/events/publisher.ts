import type { FastifyBaseLogger } from 'fastify'
import type { ChangeEvent } from './types.js'

/** Runs after the database commit and before the emit; the cache's invalidation is one. */
export type BeforeEmitHook = (organizationId: string, events: ChangeEvent[]) => Promise<void>
export type Emitter = (event: ChangeEvent) => void
/** Drops everything cached for an organization (a change that has no event of its own). */
export type OrgInvalidator = (organizationId: string) => Promise<void>

/**
 * The one path every committed change takes to the outside: invalidate, then emit (D3).
 * Callers publish only after their transaction has committed. A failing hook is logged and
 * never blocks the emit; the hook itself is responsible for its fallback (see the cache).
 */
export function createEventPublisher (opts: { log: FastifyBaseLogger }) {
  const log = opts.log.child({ component: 'events' })
  const hooks: BeforeEmitHook[] = []
  const emitters: Emitter[] = []
  const invalidators: OrgInvalidator[] = []

  return {
    beforeEmit (hook: BeforeEmitHook) { hooks.push(hook) },
    onEmit (emitter: Emitter) { emitters.push(emitter) },
    onInvalidateOrg (fn: OrgInvalidator) { invalidators.push(fn) },
    /**
     * For committed changes that no event announces (a unit or device created, a site added, a unit
     * renamed): the organization's cached dashboard is dropped. Never throws.
     */
    async invalidateOrg (organizationId: string): Promise<void> {
      for (const fn of invalidators) {
        try {
          await fn(organizationId)
        } catch (err) {
          log.error({ err, organizationId }, 'organization invalidation failed')
        }
      }
    },
    /** Publishes committed changes: grouped per organization, hooks first, then every emitter. */
    async publish (events: ChangeEvent[]): Promise<void> {
      if (events.length === 0) return
      const byOrg = new Map<string, ChangeEvent[]>()
      for (const e of events) {
        const list = byOrg.get(e.payload.organizationId)
        if (list) list.push(e)
        else byOrg.set(e.payload.organizationId, [e])
      }
      await Promise.all([...byOrg].map(async ([orgId, orgEvents]) => {
        for (const hook of hooks) {
          try {
            await hook(orgId, orgEvents)
          } catch (err) {
            log.error({ err, organizationId: orgId }, 'before-emit hook failed')
          }
        }
        for (const e of orgEvents) {
          for (const emit of emitters) {
            try {
              emit(e)
            } catch (err) {
              log.error({ err, event: e.name }, 'emit failed')
            }
          }
        }
      }))
    }
  }
}
export type EventPublisher = ReturnType<typeof createEventPublisher>
