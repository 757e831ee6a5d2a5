import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type CounterConfiguration, type GaugeConfiguration, type HistogramConfiguration } from 'prom-client'

/** Latency buckets from 0.2 ms to 1 s: a cache hit takes well under a millisecond, a slow Redis up to the command timeout. */
export const fastBuckets = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
/** COMMIT to emit: fine around the refresh wait (CACHE_REFRESH_WAIT_MS, 10 ms by default) and the 20 ms it must stay under. */
export const emitDelayBuckets = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.1, 0.25, 0.5, 1]
/** Database-bound work: 1 ms to 5 s. */
export const slowBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/**
 * The one helper every feature builds its metrics with, on an injected registry (a fresh one per app, so
 * tests never share series). Never a label per organization: label values come from closed lists.
 */
export function metricsOn (registry: Registry) {
  return {
    counter: <L extends string>(c: Omit<CounterConfiguration<L>, 'registers'>) => new Counter<L>({ ...c, registers: [registry] }),
    gauge: <L extends string>(c: Omit<GaugeConfiguration<L>, 'registers'>) => new Gauge<L>({ ...c, registers: [registry] }),
    histogram: <L extends string>(c: Omit<HistogramConfiguration<L>, 'registers'>) => new Histogram<L>({ ...c, registers: [registry] })
  }
}

/** The app's registry, with Node's default process metrics, and the metrics that belong to no one feature. */
export function createMetrics (registry = new Registry(), opts: { defaultMetrics?: boolean } = {}) {
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry })
  const m = metricsOn(registry)
  return {
    registry,
    readingsIngested: m.counter({ name: 'coldboard_readings_ingested_total', help: 'Readings stored' }),
    readingsDuplicate: m.counter({ name: 'coldboard_readings_duplicate_total', help: 'Readings already stored (same device and recordedAt)' }),
    ingestionPath: m.counter({ name: 'coldboard_ingestion_batches_total', help: 'Ingested batches by processing path', labelNames: ['path'] as const }),
    eventsEmitted: m.counter({ name: 'coldboard_events_emitted_total', help: 'Socket.io events emitted', labelNames: ['event'] as const }),
    emitDelay: m.histogram({ name: 'coldboard_change_emit_delay_seconds', help: "From a change's COMMIT to the emit of its events (the invalidation and the refresh of what it deleted in between)", buckets: emitDelayBuckets })
  }
}
export type Metrics = ReturnType<typeof createMetrics>
