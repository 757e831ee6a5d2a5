// The dashboard page: sign-in, then the organization's overview, units, alerts and operations,
// refreshed by Socket.io events (and a 30 s safety refresh), never by fast polling.

import './style.css'
import { createApi, type Alert, type Unit } from './api.js'
import { createChart } from './chart.js'
import { connectLive, type LiveStatus } from './live.js'
import { operations } from './metrics.js'
import { canWrite, restoreSession, signIn, signOut, switchOrg, type Session } from './session.js'
import { renderAlerts, renderOperations, renderOverview, renderUnits, siteNames } from './views.js'

const SAFETY_REFRESH_MS = 30_000
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T

// Errors by source, so that a refresh that succeeds again clears its own message only.
const errors = new Map<string, string>()
function setError (source: string, err: unknown): void {
  errors.set(source, err instanceof Error ? err.message : String(err))
  renderErrors()
}
function clearError (source: string): void {
  if (errors.delete(source)) renderErrors()
}
function renderErrors (): void {
  const box = $('errors')
  box.hidden = errors.size === 0
  box.replaceChildren(...[...new Set(errors.values())].map((m) => Object.assign(document.createElement('p'), { textContent: m })))
}

/** Runs `task` now, or once more right after the run in progress: never two at once, never a lost trigger. */
function coalesced (source: string, task: () => Promise<void>): () => void {
  let running = false
  let again = false
  const run = (): void => {
    running = true
    again = false
    task().then(() => clearError(source), (err: unknown) => setError(source, err)).finally(() => {
      running = false
      if (again) run()
    })
  }
  return () => { if (running) again = true; else run() }
}

const liveText: Record<LiveStatus, string> = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', refused: 'Live updates refused' }

/** Everything that lives while one organization is shown; returns its teardown. */
function startBoard (session: Session, onSignedOut: (message: string) => void): () => void {
  let stopped = false
  const api = createApi({
    token: session.token,
    orgId: session.orgId,
    onUnauthorized: (err) => { if (!stopped) onSignedOut(`Signed out: ${err.message}`) }
  })
  const writer = canWrite(session)
  const chart = createChart($('chart'))
  let units: Unit[] = []
  let unitsById = new Map<string, Unit>()
  let sites = new Map<string, string>()
  let alerts: Alert[] = []
  let selected: string | null = null

  const showAlerts = () => renderAlerts(alerts, unitsById, writer, (a, action, button) => { void act(a, action, button) })
  const showUnits = () => renderUnits(units, sites, selected, select)

  const refreshOps = coalesced('metrics', async () => { renderOperations(operations(await api.metrics())) })
  const refreshOverview = coalesced('overview', async () => {
    const r = await api.dashboard()
    if (stopped) return
    renderOverview(r.data, r.cache)
    refreshOps()
  })
  const refreshSites = coalesced('sites', async () => {
    sites = siteNames((await api.sites()).data)
    if (!stopped) showUnits()
  })
  const refreshUnits = coalesced('units', async () => {
    const list = (await api.units()).data
    if (stopped) return
    units = list
    unitsById = new Map(units.map((u) => [u.id, u]))
    showUnits()
    showAlerts() // alert rows name their unit and its limits
  })
  const refreshAlerts = coalesced('alerts', async () => {
    const list = await api.openAlerts()
    if (stopped) return
    alerts = list
    showAlerts()
  })
  const refreshChart = coalesced('chart', async () => {
    const unitId = selected
    if (!unitId) return
    const trend = (await api.trend(unitId)).data
    const unit = unitsById.get(unitId)
    if (stopped || selected !== unitId || !unit) return
    chart.render(unit, trend)
  })

  function refreshAll (): void {
    refreshSites(); refreshUnits(); refreshOverview(); refreshAlerts(); refreshChart()
  }

  function select (unitId: string | null): void {
    selected = selected === unitId ? null : unitId
    const unit = selected ? unitsById.get(selected) : undefined
    $('chart-panel').hidden = !unit
    $('chart-title').textContent = unit ? `${unit.name}: last 24 hours` : ''
    chart.clear()
    showUnits()
    if (unit) refreshChart()
  }

  async function act (alert: Alert, action: 'acknowledge' | 'resolve', button: HTMLButtonElement): Promise<void> {
    button.disabled = true
    try {
      await api.alertAction(alert.id, action)
      clearError('action')
    } catch (err) {
      setError('action', err)
    } finally {
      button.disabled = false
    }
    // The Socket.io event triggers the same refresh; doing it here too keeps the page right without it.
    refreshAlerts(); refreshOverview()
  }

  const stopLive = connectLive(session.token, {
    onStatus: (status, detail) => {
      const el = $('live')
      el.dataset.status = status
      el.textContent = liveText[status]
      el.title = detail ?? ''
    },
    onResync: refreshAll,
    onExpired: (reason) => { if (!stopped) onSignedOut(`Signed out: ${reason}; open a new dashboard link`) },
    onEvent: (name, payload) => {
      if (payload.organizationId !== session.orgId) return
      if (name === 'unitUpdate') {
        refreshOverview(); refreshUnits()
        if (payload.unitId === selected) refreshChart()
      } else if (name === 'deviceStatusChange') {
        refreshOverview()
      } else {
        refreshOverview(); refreshAlerts()
      }
    }
  })

  // Closing the chart hands keyboard focus back to the unit it belonged to.
  const closeChart = () => {
    const unitId = selected
    select(null)
    if (unitId) document.querySelector<HTMLElement>(`[data-unit="${CSS.escape(unitId)}"]`)?.focus()
  }
  const onKey = (e: KeyboardEvent) => { if (e.key === 'Escape' && selected) closeChart() }
  const onVisible = () => { if (!document.hidden) refreshAll() }
  $('chart-close').addEventListener('click', closeChart)
  document.addEventListener('keydown', onKey)
  document.addEventListener('visibilitychange', onVisible)
  const timer = window.setInterval(() => { if (!document.hidden) refreshAll() }, SAFETY_REFRESH_MS)

  $('role').textContent = session.claims.orgs[session.orgId] ?? ''
  $('chart-panel').hidden = true
  refreshAll()

  return () => {
    stopped = true
    stopLive()
    window.clearInterval(timer)
    document.removeEventListener('visibilitychange', onVisible)
    document.removeEventListener('keydown', onKey)
    $('chart-close').removeEventListener('click', closeChart)
    $('chart-panel').hidden = true
    chart.dispose()
    errors.clear()
    renderErrors()
  }
}

let stop: (() => void) | null = null

function showSignIn (message = ''): void {
  stop?.()
  stop = null
  signOut()
  $('board').hidden = true
  $('session').hidden = true
  $('signin').hidden = false
  $('signin-error').textContent = message
  $('token-input').focus()
}

function show (session: Session): void {
  stop?.()
  $('signin').hidden = true
  $('board').hidden = false
  $('session').hidden = false
  const orgSelect = $<HTMLSelectElement>('org-select')
  orgSelect.replaceChildren(...Object.keys(session.claims.orgs).map((id) =>
    new Option(`Organization ${id.slice(0, 8)}`, id, false, id === session.orgId)))
  orgSelect.disabled = orgSelect.options.length < 2
  orgSelect.onchange = () => show(switchOrg(session, orgSelect.value))
  stop = startBoard(session, showSignIn)
}

$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault()
  try {
    const input = $<HTMLTextAreaElement>('token-input')
    show(signIn(input.value))
    input.value = ''
    $('main').focus()
  } catch (err) {
    $('signin-error').textContent = (err as Error).message
  }
})
$('sign-out').addEventListener('click', () => showSignIn())

try {
  const session = restoreSession()
  if (session) show(session)
  else showSignIn()
} catch (err) {
  showSignIn((err as Error).message)
}
