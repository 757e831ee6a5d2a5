import type { Config } from '../config.js'

// PLACEHOLDER: being written this session.
export async function demo (_argv: string[], _config: () => Config): Promise<void> {
  throw new Error('demo: not implemented yet')
}
