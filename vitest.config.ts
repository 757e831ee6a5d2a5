import { defineConfig } from 'vitest/config'

/**
 * The failover tests time Redis failovers (sentinel elections, cluster recovery, a fence of one TTL) on servers they
 * start themselves; on two cores, beside the rest of the suite, their waits were seen to run out. They run last,
 * one file at a time, with the machine to themselves.
 */
const FAILOVER = [
  'test/integration/cluster.test.ts',
  'test/integration/cluster-failover.test.ts',
  'test/integration/sentinel-failover.test.ts'
]

export default defineConfig({
  test: {
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'suite', include: ['test/**/*.test.ts'], exclude: FAILOVER, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'failover', include: FAILOVER, fileParallelism: false, sequence: { groupOrder: 1 } } }
    ]
  }
})
