import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

/** The repository root, from src/commands or dist/commands alike. */
const root = fileURLToPath(new URL('../../', import.meta.url))

/**
 * `bench` and `simulate` live in bench/ (the product never imports it) and need the dev dependencies; in a
 * checkout after `npm install` they run in a child process through tsx, in the production image they say so.
 */
export async function runCheckoutTool (command: 'bench' | 'simulate', argv: string[]): Promise<void> {
  const entry = `${root}bench/cli.ts`
  let tsx: string | null = null
  try { tsx = createRequire(entry).resolve('tsx') } catch { tsx = null }
  if (!existsSync(entry) || tsx === null) {
    throw new Error(`${command} needs a checkout with its dev dependencies (git clone, npm install, then npx coldboard ${command})`)
  }
  const child = spawn(process.execPath, ['--import', 'tsx', entry, command, ...argv], { stdio: 'inherit', cwd: process.cwd() })
  const forward = (signal: NodeJS.Signals) => { child.kill(signal) }
  process.on('SIGINT', forward)
  process.on('SIGTERM', forward)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c, s) => resolve(c ?? (s ? 1 : 0))))
  process.off('SIGINT', forward)
  process.off('SIGTERM', forward)
  if (code !== 0) process.exitCode = code ?? 1
}
