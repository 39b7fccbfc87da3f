// Site routing: exact host, *.domain, "*" default, longest path prefix; unknown host → 404 (issue 2).
import t from 'tap'
import { request } from 'undici'
import { startGateway } from '../helpers/servers.ts'
import { startEchoUpstream } from '../helpers/echo.ts'

t.test('host then longest path prefix picks the site', async t => {
  const up = await startEchoUpstream(t)
  // Each site's upstream URL carries a path naming the site, so the echo says which one answered.
  const site = (name: string, hosts: string[], pathPrefix = '/'): Record<string, unknown> =>
    ({ name, hosts, pathPrefix, upstream: `${up.url}/${name}` })
  const gw = await startGateway(t, {
    raw: {
      sites: [
        site('any', ['*']),
        site('exact', ['www.example.org']),
        site('blog', ['www.example.org'], '/blog'),
        site('archive', ['www.example.org'], '/blog/archive'),
        site('wild', ['*.example.org']),
        site('deepwild', ['*.cdn.example.org']),
      ],
    },
  })
  const cases: [host: string, path: string, expect: string][] = [
    ['www.example.org', '/x?y=1', '/exact/x?y=1'],
    ['WWW.Example.ORG:8080', '/blog/1', '/blog/blog/1'],
    ['www.example.org', '/blog', '/blog/blog'],
    ['www.example.org', '/blog/archive/2020', '/archive/blog/archive/2020'],
    ['www.example.org', '/blogger', '/exact/blogger'],
    ['img.example.org', '/a.png', '/wild/a.png'],
    ['a.b.example.org', '/', '/wild/'],
    ['x.cdn.example.org', '/', '/deepwild/'],
    ['example.org', '/', '/any/'],
    ['other.test', '/p', '/any/p'],
  ]
  for (const [host, path, expect] of cases) {
    const res = await request(`${gw.url}${path}`, { dispatcher: gw.agent, headers: { host } })
    const echo = JSON.parse(await res.body.text()) as { url: string }
    t.equal(echo.url, expect, `${host}${path} → ${expect}`)
  }
  const log = await gw.logs.access('/blog/archive/2020')
  t.equal(log.site, 'archive', 'the access log names the site')
})

t.test('unknown host without a "*" site → 404, nothing forwarded', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { raw: { sites: [{ name: 'only', hosts: ['www.example.org'], upstream: up.url }] } })
  const res = await request(`${gw.url}/`, { dispatcher: gw.agent, headers: { host: 'evil.test' } })
  t.equal(res.statusCode, 404)
  t.equal(res.headers['x-livery-error'], 'LIVERY_ERR_NO_SITE')
  t.match(await res.body.text(), /evil\.test/)
  const known = await request(`${gw.url}/`, { dispatcher: gw.agent, headers: { host: 'www.example.org' } })
  t.equal(known.statusCode, 200)
  await known.body.text()
  t.equal(up.received.length, 1, 'only the known host reached the upstream')
})

t.test('a path prefix only site: paths outside it → 404', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { raw: { sites: [{ name: 'shop', hosts: ['*'], pathPrefix: '/shop/', upstream: up.url }] } })
  const out = await request(`${gw.url}/other`, { dispatcher: gw.agent })
  t.equal(out.statusCode, 404)
  await out.body.text()
  const inside = await request(`${gw.url}/shop/cart`, { dispatcher: gw.agent })
  t.equal(inside.statusCode, 200)
  await inside.body.text()
  t.equal(up.received.length, 1)
})
