/** A prom-client metric as tests read it. */
interface Readable { get (): Promise<{ values: Array<{ value: number, labels: Record<string, string | number | undefined> }> }> }

/** The sum of a metric's series, of those with every label in `labels` when given (0 when the metric is absent). */
export async function metricTotal (metric: Readable | undefined, labels: Record<string, string> = {}): Promise<number> {
  if (!metric) return 0
  return (await metric.get()).values
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((sum, v) => sum + v.value, 0)
}
