import { describe, expect, it } from 'vitest'
import { excursionThreshold, nextState } from '../../../src/features/monitoring/state-machine.js'

// A fridge kept between 2 °C and 8 °C.
const next = (prev: Parameters<typeof nextState>[0], t: number) => nextState(prev, t, 2, 8)

describe('unit state machine', () => {
  it('is normal inside the range, thresholds included', () => {
    expect(next('normal', 2)).toBe('normal')
    expect(next('normal', 8)).toBe('normal')
    expect(next('normal', 5)).toBe('normal')
  })

  it('goes too_hot above temp_max and too_cold below temp_min', () => {
    expect(next('normal', 8.01)).toBe('too_hot')
    expect(next('normal', 1.99)).toBe('too_cold')
  })

  it('stays too_hot until a reading is at or below temp_max − 0.5', () => {
    expect(next('too_hot', 8)).toBe('too_hot')
    expect(next('too_hot', 7.51)).toBe('too_hot')
    expect(next('too_hot', 7.5)).toBe('normal')
    expect(next('too_hot', 7.49)).toBe('normal')
  })

  it('stays too_cold until a reading is at or above temp_min + 0.5', () => {
    expect(next('too_cold', 2)).toBe('too_cold')
    expect(next('too_cold', 2.49)).toBe('too_cold')
    expect(next('too_cold', 2.5)).toBe('normal')
  })

  it('places the hysteresis boundary exactly where floating point would not (4.1 − 0.5 = 3.6)', () => {
    expect(4.1 - 0.5).not.toBe(3.6) // why the comparison is done in hundredths
    expect(nextState('too_hot', 3.6, 0, 4.1)).toBe('normal')
    expect(nextState('too_hot', 3.61, 0, 4.1)).toBe('too_hot')
    expect(nextState('too_cold', 0.6, 0.1, 4.1)).toBe('normal')
    expect(nextState('too_cold', 0.59, 0.1, 4.1)).toBe('too_cold')
    expect(nextState('normal', 4.1, 0.1, 4.1)).toBe('normal')
    expect(nextState('normal', 0.1, 0.1, 4.1)).toBe('normal')
  })

  it('crosses straight from one excursion to the other', () => {
    expect(next('too_hot', 1)).toBe('too_cold')
    expect(next('too_cold', 9)).toBe('too_hot')
  })

  it('evaluates an offline unit fresh: no hysteresis to hold', () => {
    expect(next('offline', 7.8)).toBe('normal')
    expect(next('offline', 2.2)).toBe('normal')
    expect(next('offline', 8.5)).toBe('too_hot')
    expect(next('offline', -3)).toBe('too_cold')
  })

  it('works for freezers (negative ranges)', () => {
    expect(nextState('normal', -17.99, -25, -18)).toBe('too_hot')
    expect(nextState('too_hot', -18.49, -25, -18)).toBe('too_hot')
    expect(nextState('too_hot', -18.5, -25, -18)).toBe('normal')
  })

  it('names the crossed threshold of an excursion', () => {
    expect(excursionThreshold('too_hot')).toBe('temp_max')
    expect(excursionThreshold('too_cold')).toBe('temp_min')
    expect(excursionThreshold('normal')).toBeNull()
    expect(excursionThreshold('offline')).toBeNull()
  })
})
