/**
 * Every Prometheus metric Livery exposes, defined in one place (DESIGN §6).
 * Other modules never import prom-client: they publish on
 * diagnostics_channel or expose stats(), and this module listens.
 */
import { readFileSync } from 'node:fs'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { RequestMetrics } from './request-metrics.ts'
import { LabelledHistogram } from './labelled-histogram.ts'

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

export interface Metrics {
  readonly registry: Registry
  /** `livery_http_requests_total` and `livery_http_request_duration_seconds`, fed once per request. */
  readonly requests: RequestMetrics
  /** Time to the upstream's response headers, by site (observed only when the upstream was asked). */
  readonly upstreamDuration: LabelledHistogram
  /** Adds a gauge whose value is read at scrape time. */
  gauge (name: string, help: string, labelNames: readonly string[], collect: (set: (labels: Record<string, string>, value: number) => void) => void): void
  counter<L extends string> (name: string, help: string, labelNames: readonly L[]): Counter<L>
  histogram<L extends string> (name: string, help: string, labelNames: readonly L[], buckets?: number[]): Histogram<L>
  /**
   * A counter of one label incremented on the request path (a cache hit):
   * the counts wait in a Map and reach prom-client only when it is scraped,
   * so an increment does no label hashing. Returns the increment.
   */
  requestCounter (name: string, help: string, labelName: string): (value: string) => void
  /** A histogram observed on the request path: one or two labels, no per-observation label hashing. */
  requestHistogram (name: string, help: string, labelNames: readonly [string] | readonly [string, string], buckets: readonly number[]): LabelledHistogram
}

export function createMetrics (opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry })
    // Gauges named like counters, which `promtool check metrics` rejects; each
    // is the sum of its by-type sibling (nodejs_active_handles{type}, ...).
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name)
  }
  const requests = new RequestMetrics(registry)
  // The gateway's own saturation, for autoscaling (deploy/kubernetes): unlike
  // requests in flight it does not rise when an upstream is slow. A counter of
  // busy seconds, so rate() is the utilisation (0-1) over any window and the
  // cluster's sum over processes stays monotonic.
  new Counter({
    name: 'livery_event_loop_active_seconds_total',
    help: 'Seconds the event loop spent running code (rate() is the event-loop utilisation, 0-1)',
    registers: [registry],
    collect () {
      this.reset()
      this.inc(performance.eventLoopUtilization().active / 1000)
    },
  })
  const upstreamDuration = new LabelledHistogram({
    name: 'livery_upstream_response_seconds',
    help: 'Time from sending a request upstream to its response headers, by site',
    labelNames: ['site'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registry,
  })
  new Gauge({
    name: 'livery_build_info',
    help: 'Always 1; the labels say which Livery and Node run',
    labelNames: ['version', 'node'] as const,
    registers: [registry],
    // One per process: in cluster mode the sum would say 4 builds run.
    aggregator: 'first',
  }).set({ version, node: process.versions.node }, 1)
  return {
    registry,
    requests,
    upstreamDuration,
    gauge (name, help, labelNames, collect) {
      new Gauge({
        name, help, labelNames, registers: [registry],
        collect () {
          this.reset()
          collect((labels, value) => this.set(labels, value))
        },
      })
    },
    counter (name, help, labelNames) {
      return new Counter({ name, help, labelNames, registers: [registry] })
    },
    histogram (name, help, labelNames, buckets) {
      return new Histogram({ name, help, labelNames, registers: [registry], ...(buckets === undefined ? {} : { buckets }) })
    },
    requestCounter (name, help, labelName) {
      const counts = new Map<string, number>()
      new Counter({
        name, help, labelNames: [labelName], registers: [registry],
        collect () {
          this.reset()
          for (const [value, n] of counts) this.inc({ [labelName]: value }, n)
        },
      })
      return value => { counts.set(value, (counts.get(value) ?? 0) + 1) }
    },
    requestHistogram (name, help, labelNames, buckets) {
      return new LabelledHistogram({ name, help, labelNames, buckets, registry })
    },
  }
}
