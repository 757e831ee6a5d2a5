import { runCheckoutTool } from './checkout-tool.js'

/** `simulate [flags]`: the client simulator of bench/workload/ in a child process (a checkout only). */
export async function simulate (argv: string[]): Promise<void> {
  await runCheckoutTool('simulate', argv)
}
