import { describe, it } from 'vitest'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { MAINTENANCE_QUEUE } from '../../../src/features/queue/ingestion-queue.js'
import { listPartitions } from '../../../src/features/maintenance/partitions.js'
import { waitFor } from '../../../src/lib/net.js'
import { useTestApp } from '../../helpers/fixture.js'
import { sharedRedisUrl } from '../../helpers/redis.js'

// The worker schedules partition maintenance as a repeatable BullMQ job on the maintenance queue, next to the
// offline sweep: partitions appear ahead of time without anyone running `coldboard maintain`.
describe('partition maintenance in the worker', () => {
  const ctx = useTestApp({ redis: true, worker: true, clock: new Date('2028-02-10T12:00:00.000Z') })

  it('creates this month\'s and the next two months\' partitions from its job scheduler', async () => {
    const connection = new Redis(sharedRedisUrl, { maxRetriesPerRequest: null })
    const queue = new Queue(MAINTENANCE_QUEUE, { connection, prefix: ctx.app.config.queuePrefix })
    try {
      await waitFor(async () => (await queue.getJobSchedulers()).some((s) => s.key === 'partitions-retention'), 10_000, 'the job scheduler')
    } finally {
      await queue.close()
      connection.disconnect()
    }
    await waitFor(async () => {
      const names = (await listPartitions(ctx.db)).map((p) => p.name)
      return ['sensor_readings_2028_02', 'sensor_readings_2028_03', 'sensor_readings_2028_04'].every((n) => names.includes(n))
    }, 15_000, 'the maintenance job')
  })
})
