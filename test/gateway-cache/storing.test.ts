// RFC 9111 §3 (storing responses) through the real Gateway and a real upstream.
import t, { type Test } from 'tap'
import { cacheFixture, text } from './fixture.ts'
import { startRawUpstream, readRequestHead } from '../helpers/servers.ts'
import { Agent, request } from 'undici'
import { Gateway } from '../../src/server/gateway.ts'
import { parseConfig } from '../../src/config/load.ts'
import { LogCapture } from '../helpers/logs.ts'

const ma = { ...text, 'cache-control': 'max-age=60' }

t.test('§3 what is stored: status codes, methods, no-store, private', async t => {
  const f = await cacheFixture(t, {
    '/ok': (_q, res, n) => res.writeHead(200, ma).end(`v${n}`),
    '/404': (_q, res, n) => res.writeHead(404, ma).end(`v${n}`),
    '/301': (_q, res, n) => res.writeHead(301, { ...ma, location: '/ok' }).end(`v${n}`),
    '/302': (_q, res, n) => res.writeHead(302, { location: '/ok' }).end(`v${n}`),
    '/302-explicit': (_q, res, n) => res.writeHead(302, { ...ma, location: '/ok' }).end(`v${n}`),
    '/500': (_q, res, n) => res.writeHead(500, text).end(`v${n}`),
    '/206': (_q, res, n) => res.writeHead(206, { ...ma, 'content-range': 'bytes 0-1/10' }).end(`v${n}`.slice(0, 2)),
    '/no-store': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'no-store, max-age=60' }).end(`v${n}`),
    '/NO-STORE': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60, No-Store' }).end(`v${n}`),
    '/private': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'private, max-age=60' }).end(`v${n}`),
    '/private-field': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'private="x-user", max-age=60', 'x-user': 'alice' }).end(`v${n}`),
    '/bare': (_q, res, n) => res.writeHead(200, text).end(`v${n}`),
    '/etag-only': (_q, res, n) => res.writeHead(200, { ...text, etag: '"e"' }).end(`v${n}`),
    '/post': (req, res, n) => res.writeHead(200, ma).end(`${req.method ?? ''}${n}`),
  })
  const stored = async (path: string, headers: Record<string, string> = {}): Promise<boolean> => {
    const before = f.hits(path)
    await f.get(path, headers)
    const second = await f.get(path, headers)
    return f.hits(path) === before + 1 && second.headers['x-cache'] === 'HIT'
  }
  t.ok(await stored('/ok'), '200 with max-age is stored')
  t.ok(await stored('/404'), '404 with max-age is stored')
  t.ok(await stored('/301'), '301 is stored')
  t.notOk(await stored('/302'), '302 without explicit freshness is not stored')
  t.ok(await stored('/302-explicit'), '302 with max-age is stored')
  t.notOk(await stored('/500'), '500 without freshness is not stored')
  t.notOk(await stored('/206'), 'a partial response is not stored')
  t.notOk(await stored('/no-store'), 'response no-store')
  t.notOk(await stored('/NO-STORE'), 'directive names are case-insensitive')
  t.notOk(await stored('/private'), 'private')
  t.notOk(await stored('/bare'), 'no freshness and no validators: not stored (defaultTtl 0)')
  t.notOk(await stored('/etag-only'), 'a validator alone, keep 0: stale on arrival, nothing to hold it for')
  const pf1 = await f.get('/private-field')
  t.equal(pf1.headers['x-user'], 'alice', 'the miss carries the private field')
  const pf2 = await f.get('/private-field')
  t.equal(pf2.headers['x-cache'], 'HIT', 'private="x-user" is stored')
  t.equal(pf2.headers['x-user'], undefined, 'without the private field')

  const p1 = await f.get('/post', {}, 'POST')
  t.equal(p1.headers['x-cache'], 'BYPASS', 'POST bypasses the cache')
  const p2 = await f.get('/post', {}, 'POST')
  t.equal(p2.body, 'POST2', 'and its response is not stored')
  const g = await f.get('/post')
  t.equal(g.headers['x-cache'], 'MISS', 'a GET after POST is not served the POST response')
  t.equal(g.body, 'GET3')

  await f.get('/ok', { 'cache-control': 'no-store' })
  const ns = await f.get('/fresh-ns', { 'cache-control': 'no-store' })
  t.equal(ns.status, 404)
  t.equal(f.entry('/fresh-ns'), undefined, 'request no-store: the response is not stored')
})

t.test('§3.5 Authorization: stored only with public, s-maxage or must-revalidate', async t => {
  const f = await cacheFixture(t, {
    '/max-age': (_q, res, n) => res.writeHead(200, ma).end(`v${n}`),
    '/public': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'public, max-age=60' }).end(`v${n}`),
    '/s-maxage': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 's-maxage=60' }).end(`v${n}`),
    '/must-revalidate': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60, must-revalidate' }).end(`v${n}`),
  })
  const auth = { authorization: 'Bearer secret' }
  await f.get('/max-age', auth)
  t.equal((await f.get('/max-age', auth)).headers['x-cache'], 'MISS', 'max-age alone does not allow sharing')
  t.equal(f.hits('/max-age'), 2)
  for (const p of ['/public', '/s-maxage', '/must-revalidate']) {
    await f.get(p, auth)
    const r = await f.get(p, auth)
    t.equal(r.headers['x-cache'], 'HIT', `${p} allows storing an authorized response`)
    t.equal(f.hits(p), 1)
  }
})

t.test('§3 Set-Cookie is never replayed from a shared cache unless allowed', async t => {
  const f = await cacheFixture(t, {
    '/cookie': (_q, res, n) => res.writeHead(200, { ...ma, 'set-cookie': 'session=abc' }).end(`v${n}`),
    '/cookie-public': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'public, max-age=60', 'set-cookie': `sess=user${n}` }).end(`v${n}`),
    '/cookie-smaxage': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 's-maxage=60', 'set-cookie': `sess=user${n}` }).end(`v${n}`),
    '/cookie-nocache-field': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60, no-cache="set-cookie"', 'set-cookie': 'session=abc' }).end(`v${n}`),
  })
  const m = await f.get('/cookie')
  t.equal(m.headers['set-cookie'], 'session=abc', 'the miss passes Set-Cookie to its own client')
  const again = await f.get('/cookie')
  t.equal(again.headers['x-cache'], 'MISS', 'a Set-Cookie response is not stored')
  for (const p of ['/cookie-public', '/cookie-smaxage']) {
    t.equal((await f.get(p)).headers['set-cookie'], 'sess=user1')
    const next = await f.get(p)
    t.not(next.headers['x-cache'], 'HIT', `${p}: not stored even so (Varnish's built-in rule)`)
    t.equal(next.headers['set-cookie'], 'sess=user2', `${p}: the next client never gets the first client's cookie`)
  }
  await f.get('/cookie-nocache-field')
  const nc = await f.get('/cookie-nocache-field')
  t.equal(nc.headers['x-cache'], 'HIT', 'no-cache="set-cookie": the origin allows a copy without the field')
  t.equal(nc.headers['set-cookie'], undefined, 'without Set-Cookie')
})

t.test('§3 a site with stripSetCookie stores such responses without Set-Cookie', async t => {
  const f = await cacheFixture(t, {
    '/tracked': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', 'set-cookie': `_ga=visitor${n}` }).end(`v${n}`),
    '/private': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'private, max-age=60', 'set-cookie': `sess=${n}` }).end(`v${n}`),
  }, { site: { stripSetCookie: true } })
  const first = await f.get('/tracked')
  t.equal(first.headers['set-cookie'], '_ga=visitor1', 'the client that caused the fill still gets its cookie')
  const hit = await f.get('/tracked')
  t.equal(hit.headers['x-cache'], 'HIT', 'stored')
  t.equal(hit.headers['set-cookie'], undefined, 'without the cookie')
  t.equal(hit.body, 'v1')
  await f.get('/private')
  t.equal((await f.get('/private')).body, 'v2', 'private still means not stored')
})

t.test('§3.1 hop-by-hop fields and fields named in Connection are never stored', async t => {
  const f = await cacheFixture(t, {
    '/hop': (_q, res) => res.writeHead(200, {
      ...ma,
      connection: 'keep-alive, X-Secret, x-other',
      'x-secret': 's',
      'x-other': 'o',
      'keep-alive': 'timeout=5',
      'proxy-authenticate': 'Basic',
      'x-kept': 'k',
    }).end('hop'),
  })
  const miss = await f.get('/hop')
  t.equal(miss.headers['x-secret'], undefined, 'not even forwarded on the miss')
  const hit = await f.get('/hop')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers['x-kept'], 'k', 'end-to-end fields are stored')
  for (const h of ['x-secret', 'x-other', 'proxy-authenticate']) t.equal(hit.headers[h], undefined, `${h} is not replayed`)
  const raw = f.entry('/hop')?.rawHeaders ?? []
  for (const h of ['connection', 'keep-alive', 'x-secret', 'x-other', 'proxy-authenticate', 'transfer-encoding']) {
    t.notOk(raw.includes(h), `${h} is not in the stored header list`)
  }
})

/** Answers each connection's request with the bytes `reply` gives for the n-th request, then closes. */
async function rawGateway (t: Test, reply: (n: number) => string): Promise<{ get: (p: string) => Promise<{ status: number, body: string, xcache: unknown, error?: string }>, count: () => number, gateway: Gateway }> {
  let n = 0
  const up = await startRawUpstream(t, socket => {
    void readRequestHead(socket).then(() => {
      n++
      socket.end(reply(n))
    }, () => socket.destroy())
  })
  const config = parseConfig({ listen: { host: '127.0.0.1', port: 0 }, cache: { directory: t.testdir() }, sites: [{ name: 'raw', hosts: ['*'], upstream: up.url }] }, {}, process.cwd())
  const gateway = new Gateway(config, { logger: new LogCapture().logger })
  const addr = await gateway.listen(0, '127.0.0.1')
  const agent = new Agent({ keepAliveTimeout: 1_000 })
  t.teardown(async () => { await agent.destroy(); await gateway.destroy() })
  return {
    gateway,
    count: () => n,
    async get (p) {
      try {
        const r = await request(`http://127.0.0.1:${addr.port}${p}`, { dispatcher: agent })
        return { status: r.statusCode, body: await r.body.text(), xcache: r.headers['x-cache'] }
      } catch (err) {
        return { status: 0, body: '', xcache: undefined, error: (err as Error).message }
      }
    },
  }
}

t.test('§3.3 a body shorter than its Content-Length is never stored (raw upstream)', async t => {
  const g = await rawGateway(t, n => `HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-type: text/plain\r\ncontent-length: 100\r\nconnection: close\r\n\r\nshort${n}`)
  const first = await g.get('/short')
  t.ok(first.error !== undefined || first.body.length < 100, 'the client sees a broken response, never a complete one')
  await g.get('/short')
  t.equal(g.count(), 2, 'the truncated body was not stored: the second request went upstream')
  t.equal(g.gateway.cache.stats().tiers.memory.entries, 0, 'nothing in the cache')
})

t.test('§3.3 a body longer than its Content-Length is never stored (raw upstream)', async t => {
  const g = await rawGateway(t, n => `HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nlong${n} and then some more bytes than announced`)
  await g.get('/long')
  await g.get('/long')
  t.equal(g.count(), 2, 'the overlong response was not stored: the second request went upstream')
  t.equal(g.gateway.cache.stats().tiers.memory.entries, 0, 'nothing in the cache')
})

t.test('§3.3 control: a body matching its Content-Length is stored (raw upstream)', async t => {
  const g = await rawGateway(t, n => `HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nexac${n}`)
  t.equal((await g.get('/exact')).body, 'exac1')
  const again = await g.get('/exact')
  t.equal(again.xcache, 'HIT')
  t.equal(again.body, 'exac1')
  t.equal(g.count(), 1)
})
