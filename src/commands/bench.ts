import type { Config } from '../config.js'

// PLACEHOLDER: being written this session (issue: workload simulator and benchmarks).
export async function bench (_argv: string[], _config: () => Config): Promise<void> {
  throw new Error('bench: not implemented yet')
}
