// Issue 16: the shipped Kubernetes manifests start, drain and scale sensibly.
// No cluster runs here, so the test reads the manifests and feeds the pod's
// environment, as Kubernetes would build it, to the real config loader.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { parseAllDocuments, parse } from 'yaml'
import { loadConfig } from '../../src/config/load.ts'
import { createMetrics } from '../../src/metrics/metrics.ts'

const deployDir = new URL('../../deploy/', import.meta.url)
// Manifests are untyped data: read them through one checked path walker.
type Doc = Record<string, unknown>
function at (value: unknown, ...path: (string | number)[]): unknown {
  for (const key of path) {
    if (typeof value !== 'object' || value === null) throw new Error(`no ${path.join('.')} in the manifest`)
    value = (value as Record<string | number, unknown>)[key]
  }
  return value
}
const docs = parseAllDocuments(readFileSync(new URL('kubernetes/livery.yaml', deployDir), 'utf8')).map(d => d.toJS() as Doc)
const byKind = (kind: string): Doc => {
  const doc = docs.find(d => d.kind === kind)
  if (doc === undefined) throw new Error(`no ${kind} in the manifest`)
  return doc
}
const pod = at(byKind('Deployment'), 'spec', 'template', 'spec') as Doc
const container = at(pod, 'containers', 0) as Doc

t.test('the pod environment, service links included, is a valid configuration', async t => {
  t.equal(pod.enableServiceLinks, false, 'service links are off')
  const env: NodeJS.ProcessEnv = {}
  for (const e of container.env as { name: string, value?: string }[]) env[e.name] = e.value ?? 'from-a-secret'
  // What a cluster with enableServiceLinks left on (or an older manifest) injects for the Service.
  const service = byKind('Service')
  t.equal(at(service, 'metadata', 'name'), 'livery')
  const port = at(service, 'spec', 'ports', 0, 'port') as number
  Object.assign(env, {
    LIVERY_SERVICE_HOST: '10.96.0.10', LIVERY_SERVICE_PORT: String(port), LIVERY_SERVICE_PORT_HTTP: String(port),
    LIVERY_PORT: `tcp://10.96.0.10:${port}`, [`LIVERY_PORT_${port}_TCP`]: `tcp://10.96.0.10:${port}`,
    [`LIVERY_PORT_${port}_TCP_PROTO`]: 'tcp', [`LIVERY_PORT_${port}_TCP_PORT`]: String(port), [`LIVERY_PORT_${port}_TCP_ADDR`]: '10.96.0.10',
  })
  const config = loadConfig({ file: new URL('livery.yaml', deployDir).pathname, env })
  t.equal(config.admin.port, 9090)
  t.equal(config.processes, 1)

  const preStop = at(container, 'lifecycle', 'preStop', 'exec', 'command') as string[]
  t.equal(preStop[0], 'sleep', 'preStop pauses so endpoints are removed before the drain')
  const pause = Number(preStop[1])
  t.ok(pause >= 1, 'a pause of a second or more')
  const grace = pod.terminationGracePeriodSeconds as number
  t.ok(grace * 1000 > config.shutdownTimeout + pause * 1000,
    `grace period ${grace}s outlasts preStop ${pause}s + shutdownTimeout ${config.shutdownTimeout}ms`)
})

t.test('the autoscaler scales on the gateway\'s own saturation', async t => {
  const metrics = at(byKind('HorizontalPodAutoscaler'), 'spec', 'metrics') as Doc[]
  t.notOk(JSON.stringify(metrics).includes('livery_requests_in_flight'), 'not on upstream concurrency')
  t.ok(metrics.some(m => m.type === 'Resource' && at(m, 'resource', 'name') === 'cpu'), 'CPU')
  const pods = metrics.filter(m => m.type === 'Pods').map(m => at(m, 'pods', 'metric', 'name') as string)
  t.same(pods, ['livery_event_loop_utilization'])
  // The adapter rule that serves it reads a series the gateway really exports.
  const adapter = parse(readFileSync(new URL('kubernetes/prometheus-adapter.yaml', deployDir), 'utf8')) as Doc
  const rule = (at(adapter, 'rules', 'custom') as Doc[]).find(r => at(r, 'name', 'as') === pods[0])
  t.ok(rule, 'the adapter has a rule for it')
  const series = /^(\w+)/.exec(String(rule?.seriesQuery))?.[1] ?? ''
  // Event-loop utilisation counts from the loop's first turn.
  await new Promise(resolve => setImmediate(resolve))
  const registry = createMetrics().registry
  const metric = registry.getSingleMetric(series)
  t.ok(metric, `${series} is exported`)
  const value = (await registry.getSingleMetricAsString(series)).split('\n').find(l => l.startsWith(series + ' '))
  t.ok(Number(value?.split(' ')[1]) > 0, 'and counts busy time')
})

t.test('the worker Deployment runs livery worker and its autoscaler scales on the queue (issue 13)', async t => {
  const worker = docs.find(d => d.kind === 'Deployment' && at(d, 'metadata', 'name') === 'livery-worker')
  if (worker === undefined) throw new Error('no livery-worker Deployment')
  const wpod = at(worker, 'spec', 'template', 'spec') as Doc
  const wc = at(wpod, 'containers', 0) as Doc
  t.equal((wc.args as string[])[0], 'worker')
  const env: NodeJS.ProcessEnv = {}
  for (const e of wc.env as { name: string, value?: string }[]) env[e.name] = e.value ?? 'from-a-secret'
  const config = loadConfig({ file: new URL('livery.yaml', deployDir).pathname, env })
  t.ok(config.cache.redis !== undefined, 'the queue is on Redis')
  t.equal(at(wc, 'readinessProbe', 'httpGet', 'port'), config.worker.port, 'probes on the worker\'s admin port')
  t.ok((wpod.terminationGracePeriodSeconds as number) * 1000 > config.shutdownTimeout, 'jobs in flight may finish')
  const hpa = docs.find(d => d.kind === 'HorizontalPodAutoscaler' && at(d, 'spec', 'scaleTargetRef', 'name') === 'livery-worker')
  const external = (at(hpa, 'spec', 'metrics') as Doc[]).map(m => at(m, 'external', 'metric', 'name'))
  t.same(external, ['livery_worker_queue_waiting'])
  const adapter = parse(readFileSync(new URL('kubernetes/prometheus-adapter.yaml', deployDir), 'utf8')) as Doc
  const rule = (at(adapter, 'rules', 'external') as Doc[]).find(r => at(r, 'name', 'as') === 'livery_worker_queue_waiting')
  t.match(rule?.seriesQuery, /^livery_worker_queue_depth\{/, 'served from the depth gauge the worker tier exports')
})
