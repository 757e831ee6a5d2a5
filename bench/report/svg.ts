const W = 330
const H = 220
const M = { left: 44, right: 20, top: 28, bottom: 40 }
const colors = { cached: '#1f77b4', uncached: '#d95f02' }

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** Latency at percentiles from 0 to 99.9 (HdrHistogram-style: every "nine" gets the same width). */
function percentilePoints (samples: number[]): Array<[number, number]> {
  const s = Float64Array.from(samples).sort()
  const n = s.length
  if (n === 0) return []
  const out: Array<[number, number]> = []
  for (let i = 0; i <= 300; i++) {
    const q = 1 - 10 ** (-(i / 100)) // 0 … 0.999
    out.push([q, s[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!])
  }
  return out
}

function panel (title: string, series: Record<'cached' | 'uncached', number[]>, yMin: number, yMax: number, bar: number | null): string {
  const lo = Math.log10(yMin)
  const hi = Math.log10(yMax)
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const x = (q: number) => M.left + (Math.min(3, Math.log10(1 / (1 - Math.min(q, 0.999)))) / 3) * pw
  const y = (v: number) => M.top + (1 - (Math.log10(Math.min(Math.max(v, yMin), yMax)) - lo) / (hi - lo)) * ph
  const parts: string[] = [`<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">${esc(title)}</text>`]
  for (let d = Math.ceil(lo); d <= Math.floor(hi); d++) {
    const v = 10 ** d
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${M.left - 4}" y="${y(v) + 3}" text-anchor="end" font-size="10">${v >= 1 ? v : v.toFixed(-d)}</text>`)
  }
  for (const [q, label] of [[0, 'p0'], [0.5, 'p50'], [0.9, 'p90'], [0.99, 'p99'], [0.999, 'p99.9']] as const) {
    parts.push(`<line x1="${x(q)}" x2="${x(q)}" y1="${M.top}" y2="${M.top + ph}" stroke="#ddd"/>`,
      `<text x="${x(q)}" y="${M.top + ph + 14}" text-anchor="middle" font-size="10">${label}</text>`)
  }
  if (bar !== null && bar > yMin && bar < yMax) {
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(bar)}" y2="${y(bar)}" stroke="#555" stroke-dasharray="4 3"/>`)
  }
  for (const name of ['uncached', 'cached'] as const) {
    const pts = percentilePoints(series[name])
    if (pts.length === 0) continue
    const d = pts.map(([q, v], i) => `${i === 0 ? 'M' : 'L'}${x(q).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
    parts.push(`<path d="${d}" fill="none" stroke="${colors[name]}" stroke-width="1.8"/>`)
  }
  parts.push(`<text x="${M.left + pw / 2}" y="${H - 8}" text-anchor="middle" font-size="10">percentile; ms on a log scale; n = ${series.cached.length} on / ${series.uncached.length} off</text>`)
  return parts.join('')
}

/**
 * Small multiples of latency by percentile, cached vs uncached, one panel per endpoint and one for all
 * requests, on a shared log axis; the dashed line is the p99 bar.
 */
export function latencyPercentilesSvg (o: {
  title: string
  panels: Array<{ title: string, cached: number[], uncached: number[] }>
  barMs: number | null
}): string {
  const all = o.panels.flatMap((p) => [...p.cached, ...p.uncached]).filter((v) => v > 0)
  let lo = 0.1
  let hi = 1000
  if (all.length > 0) {
    let min = Infinity
    let max = 0
    for (const v of all) { if (v < min) min = v; if (v > max) max = v }
    lo = 10 ** Math.floor(Math.log10(Math.max(min, 0.01)))
    hi = 10 ** Math.ceil(Math.log10(Math.max(max, lo * 10)))
  }
  const cols = 3
  const rows = Math.ceil(o.panels.length / cols)
  const width = cols * W
  const height = rows * H + 56
  const cells = o.panels.map((p, i) =>
    `<g transform="translate(${(i % cols) * W},${48 + Math.floor(i / cols) * H})">${panel(p.title, p, lo, hi, o.barMs)}</g>`)
  const legend = `<g font-size="12"><rect x="${width - 330}" y="26" width="14" height="4" fill="${colors.cached}"/><text x="${width - 310}" y="32">cache on</text>` +
    `<rect x="${width - 240}" y="26" width="14" height="4" fill="${colors.uncached}"/><text x="${width - 220}" y="32">cache off</text>` +
    (o.barMs !== null ? `<line x1="${width - 150}" x2="${width - 136}" y1="28" y2="28" stroke="#555" stroke-dasharray="4 3"/><text x="${width - 130}" y="32">p99 bar ${o.barMs} ms</text>` : '') + '</g>'
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif">` +
    `<rect width="100%" height="100%" fill="#fff"/><text x="12" y="20" font-size="15" font-weight="600">${esc(o.title)}</text>${legend}${cells.join('')}</svg>\n`
}
