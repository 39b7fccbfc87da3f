import t from 'tap'
import { request } from 'undici'
import { startGateway, startUpstream } from '../helpers/servers.ts'
import { freePort } from '../helpers/redis.ts'

t.test('the optional admin port serves /metrics, /healthz and /readyz without the prefix', async t => {
  const upstream = await startUpstream(t, (_req, res) => res.end('page'))
  const adminPort = await freePort()
  const { gateway, url } = await startGateway(t, { upstream: upstream.url, raw: { admin: { port: adminPort } } })
  t.equal(gateway.adminAddress?.port, adminPort, 'listening on the admin port')
  await (await request(`${url}/x`)).body.text()

  const metrics = await request(`http://127.0.0.1:${adminPort}/metrics`)
  t.equal(metrics.statusCode, 200)
  t.match(await metrics.body.text(), /livery_http_requests_total\{site="test",method="GET",status="200"/)
  const health = await request(`http://127.0.0.1:${adminPort}/healthz`)
  t.equal(health.statusCode, 200)
  await health.body.dump()
  const forwarded = await request(`http://127.0.0.1:${adminPort}/metrics`, { headers: { 'x-forwarded-for': '10.0.0.1' } })
  t.equal(forwarded.statusCode, 403, 'still refused through a load balancer')
  await forwarded.body.dump()
  const page = await request(`http://127.0.0.1:${adminPort}/x`)
  t.equal(page.statusCode, 404, 'the admin port serves no site')
  await page.body.dump()
})

t.test('/_livery/status reports sites, readiness and component stats, never through a load balancer', async t => {
  const upstream = await startUpstream(t, (_req, res) => res.writeHead(200, { 'cache-control': 'max-age=60' }).end('page'))
  const { url } = await startGateway(t, { upstream: upstream.url })
  await (await request(`${url}/cached`)).body.text()
  const res = await request(`${url}/_livery/status`)
  t.equal(res.statusCode, 200)
  const status = await res.body.json() as { ready: string[], sites: { name: string }[], cache: { tiers: Record<string, { entries: number }> }, pool: { admitted: number } }
  t.same(status.ready, [], 'ready')
  t.equal(status.sites[0].name, 'test')
  t.equal(status.cache.tiers.memory.entries, 1, 'the cached page is counted')
  t.ok(status.pool.admitted >= 1, 'pool stats are there')
  const forwarded = await request(`${url}/_livery/status`, { headers: { 'x-forwarded-for': '10.0.0.1' } })
  t.equal(forwarded.statusCode, 403)
  await forwarded.body.dump()
})
