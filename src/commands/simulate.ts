import type { Config } from '../config.js'

// PLACEHOLDER: being written this session (issue: workload simulator and benchmarks).
export async function simulate (_argv: string[], _config: () => Config): Promise<void> {
  throw new Error('simulate: not implemented yet')
}
