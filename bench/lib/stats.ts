import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export interface Summary { n: number, mean: number, p50: number, p99: number, min: number, max: number }

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits

/** Nearest-rank percentiles of a list of milliseconds. */
export function summarize (ms: number[]): Summary {
  if (ms.length === 0) throw new Error('no samples')
  const s = [...ms].sort((a, b) => a - b)
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!
  return { n: s.length, mean: round(s.reduce((a, b) => a + b, 0) / s.length), p50: round(at(0.5)), p99: round(at(0.99)), min: round(s[0]!), max: round(s.at(-1)!) }
}

/** A ratio rounded for a table; '–' when the denominator is zero. */
export function ratio (a: number, b: number, digits = 1): number | null {
  return b > 0 ? round(a / b, digits) : null
}

export function medianOf (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length / 2
  return Number.isInteger(mid) ? (sorted[mid - 1]! + sorted[mid]!) / 2 : sorted[Math.floor(mid)]!
}

/**
 * The ratio of two scenarios' throughput, paired round by round (measured a minute apart at most), the median of
 * those: on a shared machine whose speed swings between rounds, a ratio of medians from different rounds is noisier.
 */
export function pairedRatio (a: Array<{ reqPerSec: number }>, b: Array<{ reqPerSec: number }>): number {
  return Math.round(medianOf(a.map((x, i) => (b[i]?.reqPerSec ?? 0) > 0 ? x.reqPerSec / b[i]!.reqPerSec : 0)) * 1000) / 1000
}

/** What the numbers were measured on: they mean nothing without it. */
export function machine () {
  const cmd = (file: string, args: string[]) => {
    try { return execFileSync(file, args, { encoding: 'utf8' }).trim() } catch { return 'unknown' }
  }
  return {
    date: new Date().toISOString(),
    nproc: Number(cmd('nproc', [])),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    redis: cmd('redis-server', ['--version']),
    loadAvg: os.loadavg().map((l) => round(l, 2))
  }
}

/** Markdown table; numbers printed as given. */
export function markdownTable (headers: string[], rows: Array<Array<string | number | null>>): string {
  const align = headers.map((_, i) => (i === 0 ? '---' : '---:'))
  const line = (cells: Array<string | number | null>) => `| ${cells.map((c) => (c === null ? '–' : String(c))).join(' | ')} |`
  return [line(headers), line(align), ...rows.map(line)].join('\n')
}

/** Writes bench-out/<name> (ignored by git) and returns its path. */
export function writeResult (name: string, data: unknown): string {
  const dir = path.resolve('bench-out')
  mkdirSync(dir, { recursive: true })
  const file = path.join(dir, name)
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n')
  return file
}

export const log = (msg: string) => console.error(`[bench] ${msg}`)
