import type { Config } from '../config.js'

// PLACEHOLDER: being written this session.
export async function seed (_argv: string[], _config: () => Config): Promise<void> {
  throw new Error('seed: not implemented yet')
}
