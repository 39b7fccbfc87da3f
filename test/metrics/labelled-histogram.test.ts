// Issue 15: the queue-wait and upstream-time histograms are observed on every pass and miss without
// prom-client's label hashing; they must expose exactly what prom-client's Histogram would, in the text
// format and in the JSON that cluster mode sums.
import t from 'tap'
import { AggregatorRegistry, Histogram, Registry } from 'prom-client'
import { LabelledHistogram } from '../../src/metrics/labelled-histogram.ts'

const buckets = [0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5]
type Obs = [seconds: number, site: string, outcome: string]
const data: Obs[] = [
  [0, 'news', 'admitted'], [0, 'news', 'admitted'], [0.003, 'news', 'admitted'], [0.2, 'shop', 'admitted'],
  [0, 'shop', 'shed'], [7, 'news', 'shed'], [0.001, '-', 'shed'], [5, 'news', 'admitted'],
]

function reference (obs: readonly Obs[]): Registry {
  const registry = new Registry()
  const h = new Histogram({ name: 'livery_queue_wait_seconds', help: 'Queue wait', labelNames: ['site', 'outcome'], buckets, registers: [registry] })
  const one = new Histogram({ name: 'livery_upstream_response_seconds', help: 'Upstream', labelNames: ['site'], buckets, registers: [registry] })
  for (const [s, site, outcome] of obs) { h.observe({ site, outcome }, s); one.observe({ site }, s) }
  return registry
}

function ours (obs: readonly Obs[]): { registry: Registry, h: LabelledHistogram } {
  const registry = new Registry()
  const h = new LabelledHistogram({ name: 'livery_queue_wait_seconds', help: 'Queue wait', labelNames: ['site', 'outcome'], buckets, registry })
  const one = new LabelledHistogram({ name: 'livery_upstream_response_seconds', help: 'Upstream', labelNames: ['site'], buckets, registry })
  for (const [s, site, outcome] of obs) { h.observe(s, site, outcome); one.observe(s, site) }
  return { registry, h }
}

const lines = (text: string): string[] => text.split('\n').filter(Boolean).sort()

t.test('the text format is line for line what prom-client writes for the same observations', async t => {
  t.same(lines(await ours(data).registry.metrics()), lines(await reference(data).metrics()))
  t.equal(ours(data).h.count('news', 'admitted'), 4)
  t.equal(ours(data).h.count('nobody', 'admitted'), 0)
})

t.test('cluster aggregation sums them as it sums prom-client histograms', async t => {
  const a = data.slice(0, 3)
  const b = data.slice(3)
  const aggregated = AggregatorRegistry.aggregate([await ours(a).registry.getMetricsAsJSON(), await ours(b).registry.getMetricsAsJSON()])
  const expected = AggregatorRegistry.aggregate([await reference(a).getMetricsAsJSON(), await reference(b).getMetricsAsJSON()])
  t.same(lines(await aggregated.metrics()), lines(await expected.metrics()))
})

t.test('resetMetrics empties it', async t => {
  const { registry } = ours(data)
  registry.resetMetrics()
  t.same(lines(await registry.metrics()), lines(await reference([]).metrics()))
})
