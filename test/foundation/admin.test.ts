// Admin routes (healthz, readyz, metrics), the configurable prefix, and the access log line (issue 2).
import t from 'tap'
import { request } from 'undici'
import { startGateway } from '../helpers/servers.ts'
import { startEchoUpstream } from '../helpers/echo.ts'

t.test('healthz, readyz and metrics', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { upstream: up.url })
  const get = async (path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: string, type: string | string[] | undefined }> => {
    const res = await request(`${gw.url}${path}`, { dispatcher: gw.agent, headers })
    return { status: res.statusCode, body: await res.body.text(), type: res.headers['content-type'] }
  }
  t.equal((await get('/_livery/healthz')).status, 200)
  t.equal((await get('/_livery/readyz')).status, 200)
  t.equal((await get('/page')).status, 200, 'a site request, to be counted')
  const metrics = await get('/_livery/metrics')
  t.equal(metrics.status, 200)
  t.match(metrics.type, /^text\/plain/)
  t.match(metrics.body, /livery_http_requests_total\{[^}]*site="test"[^}]*method="GET"[^}]*status="200"[^}]*\} 1/, 'the site request is counted')
  t.match(metrics.body, /livery_http_request_duration_seconds_bucket/, 'duration histogram')
  t.match(metrics.body, /process_cpu_user_seconds_total/, 'default metrics')
  t.match(metrics.body, /nodejs_eventloop_lag_seconds/, 'default metrics')
  for (const h of ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-anything']) {
    const refused = await get('/_livery/metrics', { [h]: '1.2.3.4' })
    t.equal(refused.status, 403, `metrics refused with ${h}`)
    t.notMatch(refused.body, /livery_http_requests_total/)
  }
  t.equal((await get('/_livery/healthz', { 'x-forwarded-for': '1.2.3.4' })).status, 200, 'healthz does not care about X-Forwarded-*')
  t.equal((await get('/_livery/nope')).status, 404, 'unknown admin route')
  t.equal(up.received.length, 1, 'no admin request reached the upstream')
})

t.test('LIVERY_METRICS_ENABLED=false turns the metrics route off', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { upstream: up.url, env: { LIVERY_METRICS_ENABLED: 'false' } })
  t.equal(gw.config.metrics.enabled, false)
  const res = await request(`${gw.url}/_livery/metrics`, { dispatcher: gw.agent })
  t.equal(res.statusCode, 404)
  t.notMatch(await res.body.text(), /livery_http_requests_total/)
  const health = await request(`${gw.url}/_livery/healthz`, { dispatcher: gw.agent })
  t.equal(health.statusCode, 200, 'the other admin routes stay')
  await health.body.text()
  t.equal(up.received.length, 0)
})

t.test('a configured prefix; requests outside it go to the site', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { upstream: up.url, raw: { admin: { prefix: '/_ops' } } })
  const health = await request(`${gw.url}/_ops/healthz`, { dispatcher: gw.agent })
  t.equal(health.statusCode, 200)
  t.equal(await health.body.text(), 'ok\n')
  for (const path of ['/_livery/healthz', '/_opsx/healthz', '/x/_ops/healthz', '/_ops-metrics']) {
    const res = await request(`${gw.url}${path}`, { dispatcher: gw.agent })
    const echo = JSON.parse(await res.body.text()) as { url: string }
    t.equal(echo.url, path, `${path} goes to the site`)
  }
  t.equal(up.received.length, 4)
})

t.test('access log line fields', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { upstream: up.url })
  const res = await request(`${gw.url}/logged/page?q=1`, { method: 'POST', body: 'form=data', dispatcher: gw.agent, headers: { host: 'www.site.test' } })
  const body = await res.body.text()
  const line = await gw.logs.access('/logged/page')
  t.equal(line.type, 'access')
  t.equal(line.method, 'POST')
  t.equal(line.host, 'www.site.test')
  t.equal(line.path, '/logged/page', 'path without the query')
  t.equal(line.status, 200)
  t.equal(line.bytes, Buffer.byteLength(body), 'body bytes sent')
  t.type(line.duration, 'number')
  t.ok((line.duration as number) >= 0)
  t.type(line.upstreamTime, 'number', 'upstream time recorded')
  t.ok((line.upstreamTime as number) <= (line.duration as number), 'upstream time within the duration')
  t.equal(line.cache, 'BYPASS', 'a POST bypasses the cache')
  t.equal(line.cache, res.headers['x-cache'], 'the log and X-Cache agree')
  t.equal(line.site, 'test')
  t.equal(gw.logs.find({ type: 'access' }).length, 1, 'one line per request')
})

t.test('log.access: false', async t => {
  const up = await startEchoUpstream(t)
  const off = await startGateway(t, { upstream: up.url, raw: { log: { level: 'debug', access: false } } })
  const res = await request(`${off.url}/quiet`, { dispatcher: off.agent })
  await res.body.text()
  t.equal(res.statusCode, 200)
  // The response is written before the close event that logs; the next request orders after it.
  const again = await request(`${off.url}/_livery/healthz`, { dispatcher: off.agent })
  await again.body.text()
  t.equal(off.logs.find({ type: 'access' }).length, 0, 'log.access: false writes no access lines')
})
