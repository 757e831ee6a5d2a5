import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import type { RedisClient } from '../../infra/redis.js'

export type Verdict = { ok: true } | { ok: false, retryAfterSeconds: number }

/**
 * Requests per minute per principal (a token's subject, an API key), fixed one-minute windows in this process:
 * O(1) and no network round trip on the success path. With N instances behind a load balancer a principal gets
 * at most N × `max` a minute (docs/security.md).
 */
export function createRequestLimiter (max: number, now: () => number = Date.now) {
  const windows = new Map<string, { start: number, count: number }>()
  let nextSweep = 0
  return {
    take (key: string): Verdict {
      const t = now()
      if (t >= nextSweep) {
        // Forget finished windows once a minute: memory follows the principals active in the last minute.
        for (const [k, w] of windows) if (t - w.start >= 60_000) windows.delete(k)
        nextSweep = t + 60_000
      }
      let w = windows.get(key)
      if (!w || t - w.start >= 60_000) {
        w = { start: t, count: 0 }
        windows.set(key, w)
      }
      w.count++
      return w.count <= max ? { ok: true } : { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((w.start + 60_000 - t) / 1000)) }
    },
    size: () => windows.size
  }
}
export type RequestLimiter = ReturnType<typeof createRequestLimiter>

/** A credential as a counter key: never the secret itself. */
export function credentialKey (credential: string): string {
  return createHash('sha256').update(credential).digest('base64url').slice(0, 22)
}

/**
 * Failed authentications per client address *and* credential, counted only once verification has failed and
 * consulted only then: valid credentials are never refused, and one device with a revoked key behind a NAT or a
 * LoRaWAN network server cannot lock out anyone else's. Shared across instances in Redis (behind the key prefix),
 * degrading to this process' memory while Redis is unavailable.
 */
export function createFailureLimiter (opts: { limit: number, redis: RedisClient | null, keyPrefix: string, log: FastifyBaseLogger }) {
  const memory = new RateLimiterMemory({ points: opts.limit, duration: 60, keyPrefix: 'auth-failures' })
  const limiter = opts.redis
    ? new RateLimiterRedis({ storeClient: opts.redis, points: opts.limit, duration: 60, keyPrefix: `${opts.keyPrefix}auth-failures`, insuranceLimiter: memory, rejectIfRedisNotReady: true })
    : memory
  return {
    /** Records one failure of `credential` from `address`; whether that pair is now over the limit. */
    async fail (address: string, credential: string): Promise<Verdict> {
      try {
        await limiter.consume(`${address}|${credentialKey(credential)}`)
        return { ok: true }
      } catch (res) {
        if (res instanceof RateLimiterRes) return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(res.msBeforeNext / 1000)) }
        opts.log.warn({ err: (res as Error).message }, 'failed-authentication counter unavailable')
        return { ok: true }
      }
    }
  }
}
