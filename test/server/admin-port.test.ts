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
