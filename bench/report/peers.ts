import KeyvRedis from '@keyv/redis'
import { BentoCache, bentostore } from 'bentocache'
import { redisDriver } from 'bentocache/drivers/redis'
import { createCache } from 'cache-manager'
import type { FastifyInstance } from 'fastify'
import { Keyv } from 'keyv'

export const peerNames = ['bentocache', 'cacheManager'] as const
export type PeerName = typeof peerNames[number]

export const peerDescriptions: Record<PeerName, string> = {
  bentocache: 'bentocache (Redis L2 driver only: its in-process L1 hears invalidations on a bus connection of its own, which nothing orders against the Socket.io events, so it is not correct across instances; one Redis GET per hit)',
  cacheManager: 'cache-manager 7 + Keyv + @keyv/redis (node-redis client); get, then set on a miss (not wrap(): it hands a request the answer of a GET sent before the request began)'
}

/**
 * The cached-hit read path through each peer library, on coldboard's own app (the same plugins, hooks,
 * JWT check and :orgId authorization as its dashboard routes), reading the same payload from the same
 * Redis: GET /api/orgs/:orgId/bench-peer/<name>. Each library is used as its documentation shows (get-or-set
 * returning the value, which Fastify serialises), in its fastest configuration that is still correct across
 * instances; coldboard sends its stored JSON text as is.
 */
export async function registerPeerRoutes (app: FastifyInstance, o: { redisUrl: string, payload: () => unknown, ttlSeconds: number }) {
  const url = new URL(o.redisUrl)
  const bento = new BentoCache({
    default: 'redis',
    stores: { redis: bentostore().useL2Layer(redisDriver({ connection: { host: url.hostname, port: Number(url.port) } })) }
  })
  const keyv = new Keyv({ store: new KeyvRedis(o.redisUrl), namespace: 'bench-peer' })
  const cacheManager = createCache({ stores: [keyv] })
  const factory = () => structuredClone(o.payload())
  const ttlMs = o.ttlSeconds * 1000

  const params = { type: 'object', properties: { orgId: { type: 'string', format: 'uuid' } }, required: ['orgId'] } as const
  app.get('/api/orgs/:orgId/bench-peer/bentocache', { schema: { params, hide: true } }, async (req) => {
    const { orgId } = req.params as { orgId: string }
    return bento.getOrSet({ key: `peer:overview:${orgId}`, factory, ttl: ttlMs })
  })
  app.get('/api/orgs/:orgId/bench-peer/cacheManager', { schema: { params, hide: true } }, async (req) => {
    const { orgId } = req.params as { orgId: string }
    // Its fastest configuration that keeps coldboard's promise across instances: wrap() coalesces every call for a
    // key onto one in flight, so a request that began after an invalidation (and its event) could be handed the
    // answer of a GET that Redis ran before it. get-then-set is what wrap() does without that sharing.
    const key = `peer:overview:${orgId}`
    const hit = await cacheManager.get(key)
    if (hit !== undefined && hit !== null) return hit
    const value = factory()
    await cacheManager.set(key, value, ttlMs)
    return value
  })

  return {
    path: (orgId: string, name: PeerName) => `/api/orgs/${orgId}/bench-peer/${name}`,
    async close () {
      await bento.disconnectAll()
      await cacheManager.disconnect()
    }
  }
}
