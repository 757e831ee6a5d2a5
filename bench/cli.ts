// The checkout-only commands, run by `coldboard bench` and `coldboard simulate` (src/commands/checkout-tool.ts)
// through tsx, and directly by `npm run bench`.
import { loadConfig } from '../src/config.js'
import { runBench } from './report/run-bench.js'
import { runSimulate } from './workload/simulate.js'

// Exit (running the exit hooks that kill private redis-servers and servers) on Ctrl-C or a TERM.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))

const [command, ...argv] = process.argv.slice(2)
try {
  if (command === 'bench') await runBench(argv, (line) => process.stderr.write(`[bench] ${line}\n`))
  else if (command === 'simulate') await runSimulate(argv, () => loadConfig(), (text) => process.stdout.write(text), (line) => process.stderr.write(line + '\n'))
  else throw new Error(`usage: bench/cli.ts bench|simulate [flags] (got "${command ?? ''}")`)
} catch (err) {
  process.stderr.write(`coldboard: ${(err as Error).message}\n`)
  process.exitCode = 1
}
