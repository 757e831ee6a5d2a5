import { runCheckoutTool } from './checkout-tool.js'

/** `bench [--out DIR] [--smoke] [--update-docs] …`: bench/report/run-bench.ts in a child process (a checkout only). */
export async function bench (argv: string[]): Promise<void> {
  await runCheckoutTool('bench', argv)
}
