/**
 * Every Prometheus metric Livery exposes, defined in one place (DESIGN §6).
 * Other modules never import prom-client: they publish on
 * diagnostics_channel or expose stats(), and this module listens.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { RequestMetrics } from './request-metrics.ts'

export interface Metrics {
  readonly registry: Registry
  /** `livery_http_requests_total` and `livery_http_request_duration_seconds`, fed once per request. */
  readonly requests: RequestMetrics
  /** Adds a gauge whose value is read at scrape time. */
  gauge (name: string, help: string, labelNames: readonly string[], collect: (set: (labels: Record<string, string>, value: number) => void) => void): void
  counter<L extends string> (name: string, help: string, labelNames: readonly L[]): Counter<L>
  histogram<L extends string> (name: string, help: string, labelNames: readonly L[], buckets?: number[]): Histogram<L>
}

export function createMetrics (opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
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
  return {
    registry,
    requests,
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
  }
}
