import type { Config } from '../config.js'

/**
 * `simulate`: the reference workload W1 (or any variant, every parameter a flag) against coldboard,
 * over HTTP and Socket.io only. The simulator lives in bench/workload/ (docs/PERFORMANCE.md).
 */
export async function simulate (argv: string[], config: () => Config): Promise<void> {
  const { runSimulate } = await import('../../bench/workload/simulate.js')
  await runSimulate(argv, config, (text) => process.stdout.write(text), (line) => process.stderr.write(line + '\n'))
}
