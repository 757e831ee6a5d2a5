import type { Alert, UnitState } from '../../db/schema.js'

/** Hysteresis of 0.5 °C, in hundredths. */
const HYSTERESIS = 50

/** Temperatures are numeric(6,2): compared as integer hundredths so that 4.1 − 0.5 is exactly 3.6. */
export function toHundredths (celsius: number): number {
  return Math.round(celsius * 100)
}

/**
 * The unit's state after a reading. too_hot above temp_max, held until a reading ≤ temp_max − 0.5;
 * too_cold below temp_min, held until a reading ≥ temp_min + 0.5. An offline unit is evaluated
 * fresh (it has no state to hold). Pure: the one rule ingestion, re-evaluation and tests share.
 */
export function nextState (prev: UnitState, temperature: number, tempMin: number, tempMax: number): UnitState {
  const t = toHundredths(temperature)
  const min = toHundredths(tempMin)
  const max = toHundredths(tempMax)
  if (t > max) return 'too_hot'
  if (t < min) return 'too_cold'
  if (prev === 'too_hot' && t > max - HYSTERESIS) return 'too_hot'
  if (prev === 'too_cold' && t < min + HYSTERESIS) return 'too_cold'
  return 'normal'
}

/** The threshold an excursion in `state` crosses; null when the state is not an excursion. */
export function excursionThreshold (state: UnitState): NonNullable<Alert['threshold']> | null {
  if (state === 'too_hot') return 'temp_max'
  if (state === 'too_cold') return 'temp_min'
  return null
}
