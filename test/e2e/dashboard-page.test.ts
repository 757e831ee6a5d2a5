import { execSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { webDist } from '../../src/features/web/index.js'
import { useTestApp } from '../helpers/fixture.js'
import type { OrgFixture } from '../helpers/fixtures.js'

// The dashboard page in a real (system) Chromium against a real server: PostgreSQL, Redis, the
// in-process BullMQ worker and Socket.io. What the user sees must match the API and follow changes live.

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
// The page follows changes live (Socket.io events, src/features/realtime/): polled with a generous deadline, never a fixed sleep.
const LIVE_DEADLINE_MS = 5000

interface Stats {
  unitCounts: Record<'normal' | 'too_hot' | 'too_cold' | 'offline', number>
  alertCounts: { unresolved: number, critical: number }
  deviceCounts: { online: number, total: number }
  compliancePercentage: number
}
interface AlertJson { id: string, unitId: string, status: string }
interface UnitJson { id: string, lastReadingAt: string | null }

describe('dashboard page in Chromium', () => {
  beforeAll(() => {
    if (!existsSync(chromiumPath)) {
      throw new Error(`Chromium not found at ${chromiumPath}: install it (apt-get install chromium; scripts/ensure-services.sh does) or set CHROMIUM_PATH`)
    }
    // `npm test` builds the page first; a lone `vitest run` may not have.
    if (!existsSync(path.join(webDist, 'index.html'))) execSync('npx vite build --config web/vite.config.ts', { stdio: 'pipe' })
  })
  const ctx = useTestApp({ redis: true, worker: true, listen: true })
  let base: string
  let fx: OrgFixture
  let browser: Browser
  let managerToken: string
  const problems: string[] = []

  const api = async <T>(url: string, token = managerToken): Promise<T> => {
    const res = await fetch(`${base}${url}`, { headers: { authorization: `Bearer ${token}` } })
    expect(res.status, `${url}: ${await res.clone().text()}`).toBe(200)
    return await res.json() as T
  }
  const ingest = async (readings: Array<{ deviceEui: string, temperature: number, recordedAt: string }>) => {
    const res = await fetch(`${base}/api/ingest/readings`, {
      method: 'POST',
      headers: { 'x-api-key': fx.apiKey, 'content-type': 'application/json' },
      body: JSON.stringify({ readings })
    })
    expect(res.status, await res.clone().text()).toBe(202)
  }
  /** A page that records console errors and uncaught exceptions into `problems`. */
  const openPage = async (url: string): Promise<Page> => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`) })
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`))
    await page.goto(url)
    return page
  }
  const text = async (page: Page, selector: string) => (await page.locator(selector).textContent())?.trim() ?? ''

  beforeAll(async () => {
    base = ctx.url
    fx = await ctx.org({ units: 3 })
    managerToken = ctx.token({ [fx.org.id]: 'manager' }, { sub: 'e2e-manager' })

    // Six hours of in-range history (every 10 minutes) through the real ingestion path, so charts have data.
    const now = Date.now()
    const history = fx.devices.flatMap((d, u) => Array.from({ length: 36 }, (_, k) => ({
      deviceEui: d.deviceEui,
      temperature: Math.round((4 + u + Math.sin(k / 4)) * 100) / 100,
      recordedAt: new Date(now - (36 - k) * 10 * 60_000).toISOString()
    })))
    await ingest(history)
    await vi.waitFor(async () => {
      const units = await api<UnitJson[]>(`/api/orgs/${fx.org.id}/units`)
      expect(units.every((u) => u.lastReadingAt !== null)).toBe(true)
    }, { timeout: 15_000, interval: 50 })

    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync']
    })
  })

  afterAll(async () => {
    await browser?.close()
  })

  it('signs in from the link, matches the API, follows an excursion live and acknowledges it', async () => {
    const orgId = fx.org.id
    const page = await openPage(`${base}/#token=${managerToken}&org=${orgId}`)

    // The token moved from the address bar into this tab's sessionStorage.
    await page.locator('#board').waitFor({ state: 'visible' })
    expect(page.url()).toBe(`${base}/`)
    expect(await page.evaluate(() => sessionStorage.getItem('coldboard.token'))).toBe(managerToken)
    await page.locator('#live[data-status="live"]').waitFor()

    // Tiles show what the API returns.
    const stats = await api<Stats>(`/api/orgs/${orgId}/dashboard`)
    await vi.waitFor(async () => {
      for (const state of ['normal', 'too_hot', 'too_cold', 'offline'] as const) {
        expect(await text(page, `[data-tile="${state}"] .value`), state).toBe(String(stats.unitCounts[state]))
      }
      expect(await text(page, '[data-tile="unresolved"] .value')).toBe(String(stats.alertCounts.unresolved))
      expect(await text(page, '[data-tile="critical"] .value')).toBe(String(stats.alertCounts.critical))
      expect(await text(page, '[data-tile="devices"] .value')).toBe(`${stats.deviceCounts.online} / ${stats.deviceCounts.total}`)
      expect(await text(page, '[data-tile="compliance"] .value')).toBe(`${stats.compliancePercentage.toFixed(1)} %`)
    }, { timeout: LIVE_DEADLINE_MS, interval: 50 })
    expect(stats.unitCounts.normal).toBe(3)
    expect(await text(page, '#x-cache')).toMatch(/cache (hit|miss|bypass)/)
    await expect.poll(() => text(page, '[data-op="hit-rate"] .value'), { timeout: LIVE_DEADLINE_MS }).toMatch(/^\d+\.\d %$/)
    await expect.poll(() => text(page, '[data-op="request"] .value'), { timeout: LIVE_DEADLINE_MS }).toMatch(/^mean \d/)

    // Keyboard: Enter on a unit opens its 24 h chart with both thresholds drawn.
    const [unit] = fx.units
    const unitButton = page.locator(`[data-unit="${unit!.id}"]`)
    await unitButton.focus()
    await page.keyboard.press('Enter')
    await page.locator('#chart .uplot canvas').waitFor()
    expect(await unitButton.getAttribute('aria-expanded')).toBe('true')
    const legend = await text(page, '#chart .u-legend')
    expect(legend).toContain('Temperature')
    expect(legend).toContain('Min 2 °C')
    expect(legend).toContain('Max 8 °C')
    expect(await page.locator('#chart').getAttribute('aria-label')).toMatch(/^36 five-minute averages/)

    // An out-of-range reading: the unit turns too_hot and an alert appears, without a reload.
    await ingest([{ deviceEui: fx.devices[0]!.deviceEui, temperature: 15, recordedAt: new Date().toISOString() }])
    const alertRow = page.locator('#alerts li[data-status="active"]', { hasText: unit!.name })
    await vi.waitFor(async () => {
      expect(await unitButton.locator('.badge').getAttribute('data-state')).toBe('too_hot')
      expect(await text(page, `[data-unit="${unit!.id}"] .temp`)).toBe('15.0 °C')
      expect(await alertRow.count()).toBe(1)
      expect(await text(page, '[data-tile="too_hot"] .value')).toBe('1')
      expect(await text(page, '[data-tile="unresolved"] .value')).toBe('1')
    }, { timeout: LIVE_DEADLINE_MS, interval: 50 })
    // The open chart followed too: its latest point is the excursion.
    await vi.waitFor(async () => {
      expect(await page.locator('#chart').getAttribute('aria-label')).toMatch(/latest 15\.0 °C$/)
    }, { timeout: LIVE_DEADLINE_MS, interval: 50 })

    // Acknowledge it from the page; the API agrees and the page shows it without a reload.
    const alertId = await alertRow.getAttribute('data-alert')
    await alertRow.getByRole('button', { name: 'Acknowledge' }).click()
    await vi.waitFor(async () => {
      const acked = await api<AlertJson[]>(`/api/orgs/${orgId}/alerts?status=acknowledged`)
      expect(acked.map((a) => a.id)).toEqual([alertId])
    }, { timeout: LIVE_DEADLINE_MS, interval: 50 })
    const ackedRow = page.locator(`#alerts li[data-alert="${alertId}"]`)
    await vi.waitFor(async () => {
      expect(await ackedRow.getAttribute('data-status')).toBe('acknowledged')
      expect(await ackedRow.getByRole('button', { name: 'Acknowledge' }).count()).toBe(0)
      expect(await ackedRow.getByRole('button', { name: 'Resolve' }).count()).toBe(1)
    }, { timeout: LIVE_DEADLINE_MS, interval: 50 })

    const shot = await page.screenshot({ fullPage: true })
    mkdirSync('artifacts', { recursive: true })
    writeFileSync('artifacts/dashboard.png', shot)
    // The README's picture: refreshed on request only, so a test run leaves the checkout clean.
    if (process.env.UPDATE_SCREENSHOT === '1') writeFileSync('docs/screenshot.png', shot)

    // On a phone: everything fits the width (no sideways scrolling), the chart included.
    await page.setViewportSize({ width: 390, height: 844 })
    await vi.waitFor(async () => {
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
      expect(await page.evaluate(() => document.querySelector('#chart canvas')!.getBoundingClientRect().right)).toBeLessThanOrEqual(390)
    }, { timeout: LIVE_DEADLINE_MS, interval: 50 })
    writeFileSync('artifacts/dashboard-phone.png', await page.screenshot({ fullPage: true }))

    // Escape closes the chart and gives focus back to its unit.
    await page.keyboard.press('Escape')
    await page.locator('#chart-panel').waitFor({ state: 'hidden' })
    expect(await page.evaluate(() => (document.activeElement as HTMLElement | null)?.dataset.unit)).toBe(unit!.id)
    expect(await unitButton.getAttribute('aria-expanded')).toBe('false')

    await page.close()
    expect(problems).toEqual([])
  })

  it('signs a viewer in with a pasted token and shows alerts without actions', async () => {
    const viewerToken = ctx.token({ [fx.org.id]: 'viewer' }, { sub: 'e2e-viewer' })
    const page = await openPage(`${base}/`)
    await page.getByLabel('Paste an access token (JWT)').fill('not-a-token')
    await page.getByRole('button', { name: 'Sign in' }).click()
    expect(await text(page, '#signin-error')).toMatch(/not a JWT/)

    await page.getByLabel('Paste an access token (JWT)').fill(viewerToken)
    await page.keyboard.press('Tab')
    await page.keyboard.press('Enter')
    await page.locator('#board').waitFor({ state: 'visible' })
    expect(await text(page, '#role')).toBe('viewer')
    await page.locator('#alerts li[data-alert]').first().waitFor()
    expect(await page.locator('#alerts button').count()).toBe(0)

    // An API error is shown with its message: here the token loses access (signed for another secret).
    await page.evaluate(() => sessionStorage.setItem('coldboard.token', sessionStorage.getItem('coldboard.token')!.slice(0, -4) + 'AAAA'))
    await page.reload()
    await page.locator('#signin').waitFor({ state: 'visible' })
    await expect.poll(() => text(page, '#signin-error'), { timeout: LIVE_DEADLINE_MS }).toMatch(/^Signed out: invalid token/)

    await page.close()
    // The 401s of the forged token are expected network errors; nothing else may be logged.
    expect(problems.filter((p) => !/401 \(Unauthorized\)/.test(p))).toEqual([])
  })
})
