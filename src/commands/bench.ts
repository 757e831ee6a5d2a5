import type { Config } from '../config.js'

/**
 * `bench [--out DIR] [--smoke] [--update-docs]`: W1 with the cache on and off plus the micro-benchmarks,
 * written to DIR/report.json and DIR/report.md (bench/report/, docs/PERFORMANCE.md). Needs no configuration:
 * it starts its own redis-server and coldboard, and creates and drops its own database.
 */
export async function bench (argv: string[], _config: () => Config): Promise<void> {
  const { runBench } = await import('../../bench/report/run-bench.js')
  await runBench(argv, (line) => process.stderr.write(`[bench] ${line}\n`))
}
