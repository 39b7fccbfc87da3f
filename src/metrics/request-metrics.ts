/**
 * The two per-request metrics, `livery_http_requests_total` and
 * `livery_http_request_duration_seconds`, kept without per-request label
 * work. prom-client hashes a label object on every `inc` / `observe` (a
 * cached `labels()` child still does), which cost 11-15% of a cache hit
 * (issue 15, item 4). Here each label value maps to a small integer once, a
 * request adds to a cell found by one numeric key, and the label strings are
 * built only when Prometheus scrapes.
 *
 * The two objects it registers speak prom-client's metric protocol (`get()`
 * returning name, help, type, values and aggregator), so the text format,
 * the JSON that cluster mode aggregates and `promtool check metrics` see
 * ordinary counters and histograms.
 */
import type { Registry } from 'prom-client'

/** Buckets of the request duration histogram, in seconds. */
export const durationBuckets: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** Methods outside this set are reported as OTHER so a hostile client cannot blow up label cardinality. */
const knownMethods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PURGE', 'BAN', 'TRACE', 'CONNECT', 'OTHER']
const methodIndex = new Map(knownMethods.map((m, i) => [m, i]))
const OTHER = knownMethods.length - 1

interface MetricValue { readonly labels: Record<string, string | number>, readonly value: number, readonly metricName?: string }
interface MetricSnapshot { readonly name: string, readonly help: string, readonly type: string, readonly values: MetricValue[], readonly aggregator: string }

/** What prom-client's Registry needs of a metric. */
interface Collector { readonly name: string, readonly help: string, get (): Promise<MetricSnapshot> }

interface DurationCell { readonly site: number, readonly cache: number, readonly buckets: Float64Array, sum: number, count: number }

/** Interns label values of one kind; bounded because every caller's values are (sites from config, statuses 0-999, a few cache states). */
class Interned {
  readonly #index = new Map<string, number>()
  readonly values: string[] = []
  id (v: string): number {
    let i = this.#index.get(v)
    if (i === undefined) { i = this.values.length; this.#index.set(v, i); this.values.push(v) }
    return i
  }
}

export class RequestMetrics {
  readonly #sites = new Interned()
  readonly #caches = new Interned()
  /** key → count, key = ((site * 16 + method) * 1000 + status) * 16 + cache. */
  readonly #counts = new Map<number, number>()
  /** key → histogram cell, key = site * 16 + cache. */
  readonly #durations = new Map<number, DurationCell>()
  /** site → body bytes sent. */
  readonly #bytes = new Map<number, number>()

  constructor (registry: Registry) {
    registry.registerMetric(this.#requestsCollector() as never)
    registry.registerMetric(this.#durationCollector() as never)
    registry.registerMetric(this.#bytesCollector() as never)
  }

  /** One answered request. `status` 0 means no response was sent; `bytes` counts the body sent. */
  record (site: string, method: string, status: number, cache: string, seconds: number, bytes = 0): void {
    const s = this.#sites.id(site)
    if (bytes > 0) this.#bytes.set(s, (this.#bytes.get(s) ?? 0) + bytes)
    const c = this.#caches.id(cache)
    const m = methodIndex.get(method) ?? OTHER
    const st = status >= 0 && status < 1000 ? status : 0
    const key = ((s * 16 + m) * 1000 + st) * 16 + c
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1)
    const dk = s * 16 + c
    let cell = this.#durations.get(dk)
    if (cell === undefined) {
      cell = { site: s, cache: c, buckets: new Float64Array(durationBuckets.length), sum: 0, count: 0 }
      this.#durations.set(dk, cell)
    }
    for (let i = 0; i < durationBuckets.length; i++) {
      if (seconds <= durationBuckets[i]) { cell.buckets[i]++; break }
    }
    cell.sum += seconds
    cell.count++
  }

  #requestsCollector (): Collector {
    const self = this
    return {
      name: 'livery_http_requests_total',
      help: 'Requests answered, by site, method, status and cache status',
      async get () {
        const values: MetricValue[] = []
        for (const [key, value] of self.#counts) {
          const c = key % 16
          const st = Math.floor(key / 16) % 1000
          const m = Math.floor(key / 16000) % 16
          const s = Math.floor(key / 256000)
          values.push({ labels: { site: self.#sites.values[s], method: knownMethods[m], status: String(st), cache: self.#caches.values[c] }, value })
        }
        return { name: this.name, help: this.help, type: 'counter', values, aggregator: 'sum' }
      },
    }
  }

  #bytesCollector (): Collector {
    const self = this
    return {
      name: 'livery_http_response_bytes_total',
      help: 'Body bytes sent to clients, by site',
      async get () {
        const values: MetricValue[] = []
        for (const [s, value] of self.#bytes) values.push({ labels: { site: self.#sites.values[s] }, value })
        return { name: this.name, help: this.help, type: 'counter', values, aggregator: 'sum' }
      },
    }
  }

  #durationCollector (): Collector {
    const self = this
    return {
      name: 'livery_http_request_duration_seconds',
      help: 'Time from request to the last byte of the response',
      async get () {
        const values: MetricValue[] = []
        for (const cell of self.#durations.values()) {
          const labels = { site: self.#sites.values[cell.site], cache: self.#caches.values[cell.cache] }
          let cumulative = 0
          for (let i = 0; i < durationBuckets.length; i++) {
            cumulative += cell.buckets[i]
            values.push({ labels: { le: durationBuckets[i], ...labels }, value: cumulative, metricName: `${this.name}_bucket` })
          }
          values.push({ labels: { le: '+Inf', ...labels }, value: cell.count, metricName: `${this.name}_bucket` })
          values.push({ labels, value: cell.sum, metricName: `${this.name}_sum` })
          values.push({ labels, value: cell.count, metricName: `${this.name}_count` })
        }
        return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' }
      },
    }
  }
}
