// Issue 15, item 4: the per-request metrics without prom-client's label hashing must expose exactly what
// prom-client's own Counter and Histogram would, in the text format and in the JSON that cluster mode sums.
import t from 'tap'
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client'
import { RequestMetrics, durationBuckets } from '../../src/metrics/request-metrics.ts'

type Req = [site: string, method: string, status: number, cache: string, seconds: number, bytes?: number]

const requests: Req[] = [
  ['news', 'GET', 200, 'HIT', 0.0004, 5120], ['news', 'GET', 200, 'HIT', 0.0005, 5120], ['news', 'GET', 200, 'MISS', 0.2, 730],
  ['news', 'HEAD', 304, 'REVALIDATED', 0.003], ['shop', 'POST', 502, 'BYPASS', 31, 120], ['shop', 'FROB', 405, 'BYPASS', 0.001],
  ['-', 'GET', 400, 'BYPASS', 0], ['news', 'GET', 0, 'MISS', 1.5], ['shop', 'GET', 200, 'STALE', 2.5],
]

/** The same data through prom-client's own types: the reference. */
function reference (data: readonly Req[]): Registry {
  const registry = new Registry()
  const counter = new Counter({ name: 'livery_http_requests_total', help: 'Requests answered, by site, method, status and cache status', labelNames: ['site', 'method', 'status', 'cache'], registers: [registry] })
  const histogram = new Histogram({ name: 'livery_http_request_duration_seconds', help: 'Time from request to the last byte of the response', labelNames: ['site', 'cache'], buckets: [...durationBuckets], registers: [registry] })
  const bytes = new Counter({ name: 'livery_http_response_bytes_total', help: 'Body bytes sent to clients, by site', labelNames: ['site'], registers: [registry] })
  for (const [site, method, status, cache, seconds, sent = 0] of data) {
    if (sent > 0) bytes.inc({ site }, sent)
    counter.inc({ site, method: ['GET', 'HEAD', 'POST'].includes(method) ? method : 'OTHER', status: String(status), cache })
    histogram.observe({ site, cache }, seconds)
  }
  return registry
}

function ours (data: readonly Req[]): Registry {
  const registry = new Registry()
  const m = new RequestMetrics(registry)
  for (const r of data) m.record(...r)
  return registry
}

const lines = (text: string): string[] => text.split('\n').filter(Boolean).sort()

t.test('the text format is line for line what prom-client writes for the same requests', async t => {
  t.same(lines(await ours(requests).metrics()), lines(await reference(requests).metrics()))
})

t.test('cluster aggregation sums them as it sums prom-client metrics', async t => {
  const a = requests.slice(0, 4)
  const b = requests.slice(4)
  const aggregated = AggregatorRegistry.aggregate([await ours(a).getMetricsAsJSON(), await ours(b).getMetricsAsJSON()])
  const expected = AggregatorRegistry.aggregate([await reference(a).getMetricsAsJSON(), await reference(b).getMetricsAsJSON()])
  t.same(lines(await aggregated.metrics()), lines(await expected.metrics()))
})

t.test('labels stay bounded whatever methods and statuses clients send', async t => {
  const registry = new Registry()
  const m = new RequestMetrics(registry)
  for (let i = 0; i < 500; i++) m.record('news', `X-${i}`, 200, 'BYPASS', 0.001)
  m.record('news', 'GET', 12345, 'MISS', 0.001)
  const text = await registry.metrics()
  t.equal(text.split('\n').filter(l => l.startsWith('livery_http_requests_total{')).length, 2, 'every unknown method is OTHER; an impossible status is 0')
  t.match(text, /livery_http_requests_total\{site="news",method="OTHER",status="200",cache="BYPASS"\} 500/)
  t.match(text, /livery_http_requests_total\{site="news",method="GET",status="0",cache="MISS"\} 1/)
})
