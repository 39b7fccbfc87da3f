// Issue 16: PURGE and BAN the way CMS plugins send them, accepted from the
// address ranges in admin.purgeFrom (Varnish's acl purge) as well as with the
// token; without either, purging stays off.
import t from 'tap'
import { request } from 'undici'
import { regexPrefix } from '../../src/server/purge-method.ts'
import { startGateway, startUpstream, type GatewayFixture } from '../helpers/servers.ts'

async function cacheable (t: Parameters<typeof startUpstream>[0]): Promise<string> {
  const up = await startUpstream(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=300' }).end(`page ${req.url}\n`)
  })
  return up.url
}

const xcache = async (f: GatewayFixture, path: string): Promise<string> => {
  const res = await request(`${f.url}${path}`, { dispatcher: f.agent })
  await res.body.dump()
  return String(res.headers['x-cache'])
}

const purge = async (f: GatewayFixture, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: Record<string, unknown> }> => {
  const res = await request(`${f.url}${path}`, { method, headers, dispatcher: f.agent })
  // Purge answers are JSON; a request refused before the purge route is the gateway's plain-text error.
  if (String(res.headers['content-type']).startsWith('application/json')) return { status: res.statusCode, body: await res.body.json() as Record<string, unknown> }
  await res.body.dump()
  return { status: res.statusCode, body: { error: res.headers['x-livery-error'] } }
}

t.test('from an allowed address, without a token: PURGE, regex PURGE and BAN', async t => {
  const f = await startGateway(t, { upstream: await cacheable(t), raw: { admin: { purgeFrom: ['127.0.0.0/8', '::1'] } } })
  for (const p of ['/news/a', '/news/b', '/other', '/keep']) await xcache(f, p)
  t.equal(await xcache(f, '/news/a'), 'HIT')

  const one = await purge(f, 'PURGE', '/news/a')
  t.equal(one.status, 200, 'plone.cachepurging / Proxy Cache Purge: a plain PURGE')
  t.equal(one.body.purged, 1)
  t.equal(await xcache(f, '/news/a'), 'MISS')
  t.equal(await xcache(f, '/news/b'), 'HIT', 'only that URL')

  const folder = await purge(f, 'PURGE', '/news/.*', { 'x-purge-method': 'regex' })
  t.equal(folder.status, 200, 'Proxy Cache Purge\'s regex purge')
  t.equal(await xcache(f, '/news/b'), 'MISS')
  t.equal(await xcache(f, '/other'), 'HIT', 'outside the prefix')

  // Node's parser refuses the BAN method itself, so a VCL-style ban comes as PURGE with X-Ban-Url.
  const ban = await purge(f, 'PURGE', '/', { 'x-ban-url': '^/oth.*' })
  t.equal(ban.status, 200, 'a ban: the regex in X-Ban-Url')
  t.equal(await xcache(f, '/other'), 'MISS')
  t.equal(await xcache(f, '/keep'), 'HIT')

  const unsupported = await purge(f, 'PURGE', '/', { 'x-ban-url': '/(keep|other)' })
  t.equal(unsupported.status, 400, 'a regex that is not a prefix is refused, not guessed')
  t.equal(unsupported.body.error, 'LIVERY_ERR_PURGE_REQUEST')
  t.equal(await xcache(f, '/keep'), 'HIT')
})

t.test('outside the allowed ranges the token is still needed; a forwarded address is not enough', async t => {
  const token = 'acl-test-token'
  const f = await startGateway(t, { upstream: await cacheable(t), raw: { admin: { token, purgeFrom: ['10.0.0.0/8'] }, trustedProxies: ['127.0.0.1', '::1'] } })
  await xcache(f, '/page')
  t.equal((await purge(f, 'PURGE', '/page')).status, 401)
  t.equal((await purge(f, 'PURGE', '/page', { 'x-forwarded-for': '10.1.2.3' })).status, 401, 'X-Forwarded-For from a trusted proxy does not make the peer an allowed purger')
  t.equal(await xcache(f, '/page'), 'HIT')
  t.equal((await purge(f, 'PURGE', '/page', { authorization: `Bearer ${token}` })).status, 200)
  t.equal(await xcache(f, '/page'), 'MISS')
})

t.test('without a token or an allow list, purging stays off', async t => {
  const f = await startGateway(t, { upstream: await cacheable(t) })
  await xcache(f, '/page')
  const off = await purge(f, 'PURGE', '/page')
  t.equal(off.status, 403)
  t.equal((await purge(f, 'PURGE', '/.*', { 'x-purge-method': 'regex' })).status, 403)
  t.equal(await xcache(f, '/page'), 'HIT')
})

t.test('which regular expressions are prefixes', async t => {
  t.same(regexPrefix('/.*'), { literal: '/', exact: false })
  t.same(regexPrefix('^/news/.*$'), { literal: '/news/', exact: false })
  t.same(regexPrefix('^/a\\.html$'), { literal: '/a.html', exact: true })
  t.same(regexPrefix('/wp-content/uploads'), { literal: '/wp-content/uploads', exact: false })
  t.equal(regexPrefix('/(a|b)'), undefined)
  t.equal(regexPrefix('/news/.*\\.jpg'), undefined)
  t.equal(regexPrefix('/\\d+'), undefined, 'a class escape is not a literal')
})
