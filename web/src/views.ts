// Rendering of the overview tiles, the unit list, the alert list and the operations panel.

import type { Alert, CacheOutcome, DashboardStats, Site, Unit } from './api.js'
import { fmtAgo, fmtPercent, fmtSeconds, fmtTemp, fmtTime, h, replaceKeepingFocus, stateLabel } from './dom.js'
import type { Operations } from './metrics.js'

const $ = (id: string) => document.getElementById(id)!

function tile (key: string, label: string, value: string, cls = ''): HTMLElement {
  return h('div', { class: `tile ${cls}`, 'data-tile': key }, h('span', { class: 'value' }, value), h('span', { class: 'label' }, label))
}

export function renderOverview (s: DashboardStats, cache: CacheOutcome | null): void {
  const u = s.unitCounts
  const zeroOr = (n: number, cls: string) => (n > 0 ? cls : 'quiet')
  $('tiles').replaceChildren(
    tile('normal', 'Normal', String(u.normal), 'state-normal'),
    tile('too_hot', 'Too hot', String(u.too_hot), zeroOr(u.too_hot, 'state-too_hot')),
    tile('too_cold', 'Too cold', String(u.too_cold), zeroOr(u.too_cold, 'state-too_cold')),
    tile('offline', 'Offline', String(u.offline), zeroOr(u.offline, 'state-offline')),
    tile('unresolved', 'Open alerts', String(s.alertCounts.unresolved), zeroOr(s.alertCounts.unresolved, 'warn')),
    tile('critical', 'Critical', String(s.alertCounts.critical), zeroOr(s.alertCounts.critical, 'state-too_hot')),
    tile('devices', 'Devices online', `${s.deviceCounts.online} / ${s.deviceCounts.total}`),
    tile('compliance', 'In range, 24 h', `${s.compliancePercentage.toFixed(1)} %`),
    tile('worst', 'Worst state', stateLabel[s.worstState] ?? s.worstState, `state-${s.worstState}`)
  )
  $('overview-meta').replaceChildren(
    `${u.total} units · ${s.siteCount} site${s.siteCount === 1 ? '' : 's'} · updated ${new Date(s.lastUpdated).toLocaleTimeString()}`,
    cache ? h('span', { class: 'cache', id: 'x-cache', title: 'x-cache header of the last overview response' }, ` · cache ${cache}`) : ''
  )
}

export function renderUnits (units: Unit[], sites: Map<string, string>, selected: string | null, onSelect: (id: string) => void): void {
  const list = $('units')
  if (units.length === 0) {
    list.replaceChildren(h('li', { class: 'empty' }, 'No units yet.'))
    return
  }
  replaceKeepingFocus(list, units.map((u) => h('li', {},
    h('button', {
      type: 'button',
      class: `unit state-${u.state}${u.isActive ? '' : ' inactive'}`,
      'data-unit': u.id,
      'data-focus': `unit-${u.id}`,
      'aria-expanded': u.id === selected ? 'true' : 'false',
      'aria-controls': 'chart-panel',
      onclick: () => onSelect(u.id)
    },
    h('span', { class: 'name' }, u.name, h('small', {}, sites.get(u.siteId) ?? '')),
    h('span', { class: 'badge', 'data-state': u.state }, u.isActive ? stateLabel[u.state] ?? u.state : 'Inactive'),
    h('span', { class: 'temp' }, fmtTemp(u.lastTemperature)),
    h('span', { class: 'range', title: 'Allowed range' }, `${u.tempMin}–${u.tempMax} °C`),
    h('time', { class: 'when', datetime: u.lastReadingAt ?? false, title: fmtTime(u.lastReadingAt) }, fmtAgo(u.lastReadingAt))
    ))))
}

function describeAlert (a: Alert, unit: Unit | undefined): string {
  if (a.type === 'offline') return 'No readings (offline)'
  const limit = a.threshold === 'temp_max' ? `max ${unit?.tempMax ?? '?'} °C` : `min ${unit?.tempMin ?? '?'} °C`
  return `${a.threshold === 'temp_max' ? 'Too hot' : 'Too cold'}: ${fmtTemp(a.triggerTemperature)} (${limit})`
}

export function renderAlerts (
  alerts: Alert[], units: Map<string, Unit>, canWrite: boolean,
  onAction: (a: Alert, action: 'acknowledge' | 'resolve', button: HTMLButtonElement) => void
): void {
  const list = $('alerts')
  if (alerts.length === 0) {
    list.replaceChildren(h('li', { class: 'empty' }, 'No open alerts.'))
    return
  }
  const button = (a: Alert, action: 'acknowledge' | 'resolve', label: string) => h('button', {
    type: 'button',
    'data-action': action,
    'data-focus': `${action}-${a.id}`,
    onclick: (e) => onAction(a, action, e.currentTarget as HTMLButtonElement)
  }, label)
  replaceKeepingFocus(list, alerts.map((a) => {
    const unit = units.get(a.unitId)
    return h('li', { class: `alert sev-${a.severity}`, 'data-alert': a.id, 'data-status': a.status },
      h('div', { class: 'what' },
        h('strong', {}, unit?.name ?? 'Unknown unit'),
        h('span', { class: 'badge', 'data-severity': a.severity }, a.severity === 'critical' ? 'Critical' : 'Warning'),
        h('span', {}, describeAlert(a, unit))),
      h('div', { class: 'meta' },
        h('time', { datetime: a.triggeredAt, title: fmtTime(a.triggeredAt) }, `Triggered ${fmtAgo(a.triggeredAt)}`),
        ' · ',
        h('span', { class: 'status' }, a.status === 'acknowledged' ? `Acknowledged ${fmtAgo(a.acknowledgedAt)}` : 'Active')),
      canWrite
        ? h('div', { class: 'actions' }, a.status === 'active' ? button(a, 'acknowledge', 'Acknowledge') : null, button(a, 'resolve', 'Resolve'))
        : null)
  }))
}

export function renderOperations (ops: Operations): void {
  const row = (key: string, term: string, value: string, detail: string) =>
    h('div', { 'data-op': key }, h('dt', {}, term), h('dd', {}, h('span', { class: 'value' }, value), h('small', {}, detail)))
  const latency = (x: Operations['request']) => `mean ${fmtSeconds(x.mean)}`
  $('ops').replaceChildren(
    row('hit-rate', 'Cache hit rate', fmtPercent(ops.hitRate),
      `${ops.hits} hits · ${ops.misses} misses · ${ops.bypasses} bypasses`),
    row('request', 'Dashboard latency', latency(ops.request), `p95 ≈ ${fmtSeconds(ops.request.p95)} · ${ops.request.count} requests`),
    row('invalidation', 'Invalidation latency', latency(ops.invalidation),
      `p95 ≈ ${fmtSeconds(ops.invalidation.p95)} · ${ops.invalidation.count} invalidations`)
  )
}

export const siteNames = (sites: Site[]) => new Map(sites.map((s) => [s.id, s.name]))
