// The 24 h temperature chart of one unit: 5-minute averages, with the unit's thresholds as lines.

import UPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import type { TemperatureTrend, Unit } from './api.js'
import { fmtTemp } from './dom.js'

const HEIGHT = 240

export function createChart (container: HTMLElement) {
  let plot: UPlot | null = null
  const resize = new ResizeObserver(() => plot?.setSize({ width: container.clientWidth, height: HEIGHT }))
  resize.observe(container)

  function destroy () {
    plot?.destroy()
    plot = null
  }

  return {
    render (unit: Unit, trend: TemperatureTrend) {
      destroy()
      if (trend.points.length === 0) {
        container.replaceChildren('No readings in the last 24 hours.')
        container.setAttribute('aria-label', 'No readings in the last 24 hours.')
        return
      }
      container.replaceChildren()
      const xs = trend.points.map((p) => Date.parse(p.timestamp) / 1000)
      const temps = trend.points.map((p) => p.temperature)
      const data: UPlot.AlignedData = [xs, temps, xs.map(() => unit.tempMin), xs.map(() => unit.tempMax)]
      const threshold = (label: string, stroke: string): UPlot.Series => ({ label, stroke, width: 1.5, dash: [6, 4], points: { show: false } })
      plot = new UPlot({
        width: Math.max(container.clientWidth, 200),
        height: HEIGHT,
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          y: {
            // Always keep both thresholds in view, with a little room around the readings.
            range: (_u, min, max) => [Math.min(min, unit.tempMin) - 1, Math.max(max, unit.tempMax) + 1]
          }
        },
        axes: [{}, { values: (_u, ticks) => ticks.map((t) => `${t} °C`), size: 60 }],
        series: [
          {},
          { label: 'Temperature', stroke: '#1f6feb', width: 2, value: (_u, v) => fmtTemp(v) },
          threshold(`Min ${unit.tempMin} °C`, '#0a7ea4'),
          threshold(`Max ${unit.tempMax} °C`, '#c62828')
        ]
      }, data, container)
      const last = temps[temps.length - 1]!
      container.setAttribute('aria-label',
        `${trend.points.length} five-minute averages from ${Math.min(...temps).toFixed(1)} to ${Math.max(...temps).toFixed(1)} °C; latest ${fmtTemp(last)}`)
    },
    clear () {
      destroy()
      container.replaceChildren()
      container.removeAttribute('aria-label')
    },
    dispose () {
      this.clear()
      resize.disconnect()
    }
  }
}
