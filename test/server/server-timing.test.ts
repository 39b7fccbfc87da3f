// Issue 16: Server-Timing shows which stage was slow (queue, cache lookup,
// theme fetch, upstream first byte, theming), for sites that opt in, for
// requests through trusted proxies and for admin-token holders; the access
// log carries the same figures.
import t from 'tap'
import { join } from 'node:path'
import { request } from 'undici'
import { startGateway, startUpstream } from '../helpers/servers.ts'

const token = 'timing-token'
const rules = `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html" /><replace css:theme="#main" css:content="#content" /></rules>`

/** `name` → dur of a Server-Timing value. */
function stages (value: unknown): Record<string, number> {
  const out: Record<string, number> = {}
  for (const part of String(value ?? '').split(',')) {
    const m = /^\s*([\w-]+);dur=([\d.]+)/.exec(part)
    if (m !== null) out[m[1]] = Number(m[2])
  }
  return out
}

t.test('opt-in by token or trusted proxy; never the token upstream', async t => {
  const seen: (string | undefined)[] = []
  const up = await startUpstream(t, (req, res) => {
    seen.push(req.headers['x-livery-token'] as string | undefined)
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end('hello\n')
  })
  const f = await startGateway(t, { upstream: up.url, raw: { admin: { token }, trustedProxies: ['127.0.0.1', '::1'] } })
  const get = async (path: string, headers: Record<string, string> = {}): Promise<Record<string, number> | undefined> => {
    const res = await request(`${f.url}${path}`, { headers, dispatcher: f.agent })
    await res.body.dump()
    return res.headers['server-timing'] === undefined ? undefined : stages(res.headers['server-timing'])
  }
  t.equal(await get('/plain'), undefined, 'not by default')
  t.equal(await get('/wrong', { 'x-livery-token': 'nope' }), undefined, 'not with a wrong token')
  const miss = await get('/page', { 'x-livery-token': token })
  t.ok(miss !== undefined && 'cache' in miss && 'upstream' in miss && 'total' in miss, `a miss: cache, upstream, total (${JSON.stringify(miss)})`)
  t.ok((miss?.total ?? 0) >= (miss?.upstream ?? 0), 'the total includes the upstream time')
  const hit = await get('/page', { 'x-livery-token': token })
  t.ok(hit !== undefined && 'cache' in hit && !('upstream' in hit), 'a hit: the lookup, no upstream')
  t.same(seen, [undefined, undefined, undefined], 'the token never reached the upstream')
  const proxied = await get('/page', { 'x-forwarded-for': '203.0.113.9' })
  t.ok(proxied !== undefined && 'cache' in proxied, 'through a trusted proxy')
  const line = await f.logs.waitFor({ type: 'access', path: '/page', cache: 'MISS' })
  t.equal(typeof line.cacheLookup, 'number', 'the access log has the lookup time')
  t.equal(typeof line.upstreamTime, 'number')
})

t.test('a site that opts in, themed: the transform time', async t => {
  const theme = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body><div id="main"></div></body></html>')
  })
  const content = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'max-age=60' }).end('<html><body><div id="content">hi</div></body></html>')
  })
  const dir = t.testdir({ 'rules.xml': rules })
  const f = await startGateway(t, { upstream: content.url, site: { serverTiming: true, theme: { rules: join(dir, 'rules.xml'), base: `${theme.url}/` } } })
  const res = await request(`${f.url}/`, { dispatcher: f.agent })
  t.match(await res.body.text(), /hi/)
  const timing = stages(res.headers['server-timing'])
  t.ok('transform' in timing && 'upstream' in timing && 'cache' in timing, `every stage of a themed miss (${String(res.headers['server-timing'])})`)
  t.equal(typeof (await f.logs.waitFor({ type: 'access', path: '/' })).transform, 'number', 'and in the access log')
})
