/** Injectable time source: services never call Date.now() directly, so tests can move time. */
export interface Clock { now (): Date }

export const systemClock: Clock = { now: () => new Date() }

export function manualClock (start = new Date()): Clock & { set (d: Date): void, advance (ms: number): void } {
  let t = start.getTime()
  return {
    now: () => new Date(t),
    set: (d: Date) => { t = d.getTime() },
    advance: (ms: number) => { t += ms }
  }
}
