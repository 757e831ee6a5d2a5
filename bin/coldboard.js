#!/usr/bin/env node
// Runs the compiled CLI (dist/, built by `npm run build`, which `npm install` runs). `npm run dev` runs the
// TypeScript sources through tsx instead.
import { existsSync } from 'node:fs'

const cli = new URL('../dist/cli.js', import.meta.url)
if (!existsSync(cli)) {
  process.stderr.write('coldboard: not built: run `npm run build` (or `npm install`, which builds)\n')
  process.exit(1)
}
await import(cli.href)
