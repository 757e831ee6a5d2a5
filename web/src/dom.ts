// A tiny element builder and the formatting shared by the views.

type Child = Node | string | number | null | undefined | false
type Props = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>

/** `h('button', { class: 'x', onclick: fn, 'aria-expanded': true }, 'label')`; false/null props are left out. */
export function h<K extends keyof HTMLElementTagNameMap> (tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) {
    if (typeof value === 'function') el.addEventListener(key.slice(2), value)
    else if (value === false || value === null || value === undefined) continue
    else if (key.startsWith('aria-') && value === true) el.setAttribute(key, 'true')
    else el.setAttribute(key, value === true ? '' : String(value))
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c)
  return el
}

/**
 * Replaces the children of `parent`, keeping keyboard focus on the element with the same
 * `data-focus` key, so that a live refresh never throws a keyboard user back to the top of the page.
 */
export function replaceKeepingFocus (parent: HTMLElement, children: Node[]): void {
  const active = document.activeElement
  const key = active instanceof HTMLElement && parent.contains(active) ? active.dataset.focus : undefined
  parent.replaceChildren(...children)
  if (key) parent.querySelector<HTMLElement>(`[data-focus="${CSS.escape(key)}"]`)?.focus()
}

export const stateLabel: Record<string, string> = { normal: 'Normal', too_hot: 'Too hot', too_cold: 'Too cold', offline: 'Offline' }

export const fmtTemp = (c: number | null): string => (c === null ? '—' : `${c.toFixed(1)} °C`)

export function fmtPercent (ratio: number | null, digits = 1): string {
  return ratio === null ? '—' : `${(ratio * 100).toFixed(digits)} %`
}

export function fmtSeconds (s: number | null): string {
  if (s === null) return '—'
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`
  return `${s.toFixed(2)} s`
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' })

/** "3 min ago" style, for readings and alerts; the exact time goes in a title attribute. */
export function fmtAgo (iso: string | null, now = Date.now()): string {
  if (!iso) return 'never'
  const s = Math.round((Date.parse(iso) - now) / 1000)
  const a = Math.abs(s)
  if (a < 45) return 'just now'
  if (a < 3600) return relative.format(Math.round(s / 60), 'minute')
  if (a < 86400) return relative.format(Math.round(s / 3600), 'hour')
  return relative.format(Math.round(s / 86400), 'day')
}

export const fmtTime = (iso: string | null): string => (iso ? new Date(iso).toLocaleString() : '')
