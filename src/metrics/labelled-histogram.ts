/**
 * A Prometheus histogram for the request path with one or two labels,
 * observed without per-request label work. prom-client's `observe(labels, v)`
 * hashes the label object on every call (a cached `labels()` child still
 * does); pass and miss requests observe two histograms each (queue wait,
 * upstream time), which cost about 1.5% of a pass request (issue 15). Here a
 * label tuple finds its cell through one or two Map lookups on the values,
 * and the label objects are built only when Prometheus scrapes, as
 * request-metrics.ts does for the per-request counters.
 *
 * It speaks prom-client's metric protocol (`get()` returning name, help,
 * type, values and aggregator), so the text format, the JSON that cluster
 * mode aggregates and `promtool check metrics` see an ordinary histogram.
 */
import type { Registry } from 'prom-client'

interface Cell { readonly labels: Record<string, string>, readonly buckets: Float64Array, sum: number, count: number }

interface MetricValue { readonly labels: Record<string, string | number>, readonly value: number, readonly metricName: string }

export interface LabelledHistogramOptions {
  readonly name: string
  readonly help: string
  /** One or two label names, in the order `observe` takes their values. */
  readonly labelNames: readonly [string] | readonly [string, string]
  /** Upper bounds in seconds, ascending. */
  readonly buckets: readonly number[]
  readonly registry: Registry
}

export class LabelledHistogram {
  readonly name: string
  readonly help: string
  readonly #labelNames: readonly string[]
  readonly #buckets: readonly number[]
  /** first label value → second label value ('' with one label) → cell. Bounded by its callers' label values (site names, a few outcomes). */
  readonly #cells = new Map<string, Map<string, Cell>>()

  constructor (opts: LabelledHistogramOptions) {
    this.name = opts.name
    this.help = opts.help
    this.#labelNames = opts.labelNames
    this.#buckets = opts.buckets
    opts.registry.registerMetric(this as never)
  }

  /** Observes `value` for the label values `a` (and `b`, with two labels). */
  observe (value: number, a: string, b = ''): void {
    let row = this.#cells.get(a)
    if (row === undefined) { row = new Map(); this.#cells.set(a, row) }
    let cell = row.get(b)
    if (cell === undefined) {
      const labels: Record<string, string> = { [this.#labelNames[0]]: a }
      if (this.#labelNames.length > 1) labels[this.#labelNames[1]] = b
      cell = { labels, buckets: new Float64Array(this.#buckets.length), sum: 0, count: 0 }
      row.set(b, cell)
    }
    const buckets = this.#buckets
    for (let i = 0; i < buckets.length; i++) {
      if (value <= buckets[i]) { cell.buckets[i]++; break }
    }
    cell.sum += value
    cell.count++
  }

  /** The sample count for these label values (tests, status pages). */
  count (a: string, b = ''): number {
    return this.#cells.get(a)?.get(b)?.count ?? 0
  }

  /** prom-client's metric protocol. */
  async get (): Promise<{ name: string, help: string, type: string, values: MetricValue[], aggregator: string }> {
    const values: MetricValue[] = []
    const bucket = `${this.name}_bucket`
    for (const row of this.#cells.values()) {
      for (const cell of row.values()) {
        const labels = cell.labels
        let cumulative = 0
        for (let i = 0; i < this.#buckets.length; i++) {
          cumulative += cell.buckets[i]
          values.push({ labels: { le: this.#buckets[i], ...labels }, value: cumulative, metricName: bucket })
        }
        values.push({ labels: { le: '+Inf', ...labels }, value: cell.count, metricName: bucket })
        values.push({ labels, value: cell.sum, metricName: `${this.name}_sum` })
        values.push({ labels, value: cell.count, metricName: `${this.name}_count` })
      }
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' }
  }

  /** prom-client calls these on `registry.resetMetrics()`. */
  reset (): void {
    this.#cells.clear()
  }
}
