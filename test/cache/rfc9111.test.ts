/**
 * RFC 9111 behaviour through a real upstream and a real gateway, grouped by
 * section. The clock is injected; nothing sleeps.
 */
import t from 'tap'
import { fixture } from './fixture.ts'

const text = { 'content-type': 'text/plain' }

t.test('§3 storing', async (t) => {
  const f = await fixture(t, {
    '/max-age': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60' }).end(`v${n}`),
    '/no-store': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'no-store, max-age=60' }).end(`v${n}`),
    '/private': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'Private, max-age=60' }).end(`v${n}`),
    '/bare': (_q, res, n) => res.writeHead(200, text).end(`v${n}`),
    '/auth': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60' }).end(`v${n}`),
    '/auth-public': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'public, max-age=60' }).end(`v${n}`),
    '/302': (_q, res, n) => res.writeHead(302, { location: '/x' }).end(`v${n}`),
    '/hop': (_q, res) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', connection: 'x-secret', 'x-secret': 's', 'keep-alive': 'timeout=5', 'x-kept': 'k' }).end('h'),
    '/cookie': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', 'set-cookie': 'a=b' }).end(`v${n}`)
  })
  await f.get('/max-age')
  const r = await f.get('/max-age')
  t.equal(r.headers['x-cache'], 'HIT', 'max-age response is stored')
  t.equal(r.body, 'v1')
  for (const p of ['/no-store', '/private', '/bare', '/302', '/cookie']) {
    await f.get(p)
    const again = await f.get(p)
    t.equal(again.headers['x-cache'], 'MISS', `${p} is not stored`)
    t.equal(f.hits(p), 2)
  }
  await f.get('/auth', { authorization: 'Basic x' })
  await f.get('/auth', { authorization: 'Basic x' })
  t.equal(f.hits('/auth'), 2, 'Authorization requests are not stored without public/s-maxage/must-revalidate')
  await f.get('/auth-public', { authorization: 'Basic x' })
  t.equal((await f.get('/auth-public', { authorization: 'Basic x' })).headers['x-cache'], 'HIT', 'public allows it')
  await f.get('/hop')
  const h = await f.get('/hop')
  t.equal(h.headers['x-cache'], 'HIT')
  t.equal(h.headers['x-secret'], undefined, 'a field named in Connection is not stored')
  t.equal(h.headers['x-kept'], 'k', 'end-to-end fields are stored')
  t.not(h.headers['keep-alive'], 'timeout=5', 'upstream keep-alive is not replayed')
  await f.get('/x', { 'cache-control': 'no-store' })
  t.equal(f.hits('/x'), 1)
})

t.test('§3 storing: defaultTtl caches responses without freshness or validators', async (t) => {
  const f = await fixture(t, { '/bare': (_q, res, n) => res.writeHead(200, text).end(`v${n}`) }, { defaultTtl: 10_000 })
  await f.get('/bare')
  t.equal((await f.get('/bare')).headers['x-cache'], 'HIT')
  f.clock.now += 11_000
  t.equal((await f.get('/bare')).body, 'v2', 'expires after defaultTtl')
})

t.test('§4.2 freshness', async (t) => {
  const past = new Date(Date.now() - 60_000).toUTCString()
  const f = await fixture(t, {
    '/max-age': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=10' }).end(`v${n}`),
    '/s-maxage': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=1, s-maxage=100' }).end(`v${n}`),
    '/expires-bad': (_q, res, n) => res.writeHead(200, { ...text, expires: '0', etag: '"e"' }).end(`v${n}`),
    '/expires-past': (_q, res, n) => res.writeHead(200, { ...text, expires: past }).end(`v${n}`),
    '/expires': (_q, res, n) => res.writeHead(200, { ...text, date: new Date(f.clock.now).toUTCString(), expires: new Date(f.clock.now + 30_000).toUTCString() }).end(`v${n}`),
    '/aged': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=10', age: '8' }).end(`v${n}`),
    '/aged-junk': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=10', age: 'soon' }).end(`v${n}`),
    '/heuristic': (_q, res, n) => res.writeHead(200, { ...text, 'last-modified': new Date(f.clock.now - 100_000_000).toUTCString() }).end(`v${n}`)
  })
  await f.get('/max-age')
  f.clock.now += 9_000
  t.equal((await f.get('/max-age')).headers['x-cache'], 'HIT', 'fresh before max-age')
  f.clock.now += 2_000
  t.equal((await f.get('/max-age')).body, 'v2', 'refetched after max-age')

  await f.get('/s-maxage')
  f.clock.now += 50_000
  t.equal((await f.get('/s-maxage')).headers['x-cache'], 'HIT', 's-maxage overrides max-age in a shared cache')

  for (const p of ['/expires-bad', '/expires-past']) {
    await f.get(p)
    await f.get(p)
    t.equal(f.hits(p), 2, `${p}: an invalid or past Expires is stale`)
  }
  await f.get('/expires')
  f.clock.now += 20_000
  t.equal((await f.get('/expires')).headers['x-cache'], 'HIT', 'Expires in the future is fresh')

  await f.get('/aged')
  f.clock.now += 3_000
  t.equal((await f.get('/aged')).body, 'v2', 'incoming Age counts against max-age')
  await f.get('/aged-junk')
  t.equal((await f.get('/aged-junk')).headers['x-cache'], 'HIT', 'an unparsable Age is ignored')

  await f.get('/heuristic')
  f.clock.now += 5_000
  t.equal((await f.get('/heuristic')).headers['x-cache'], 'HIT', 'Last-Modified heuristic for a 200')
})

t.test('§4.3 validation', async (t) => {
  const f = await fixture(t, {
    '/etag': (req, res, n) => {
      if (req.headers['if-none-match'] === '"v1"') { res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=10', 'x-new': String(n) }).end(); return }
      res.writeHead(200, { ...text, etag: '"v1"', 'cache-control': 'max-age=10', 'last-modified': 'Tue, 01 Jan 2030 00:00:00 GMT' }).end('body1')
    },
    '/no-cache': (req, res, n) => {
      if (req.headers['if-none-match'] === '"n"') { res.writeHead(304, { etag: '"n"' }).end(); return }
      res.writeHead(200, { ...text, etag: '"n"', 'cache-control': 'no-cache' }).end(`v${n}`)
    }
  }, { keep: 60_000 })
  await f.get('/etag')
  const c = await f.get('/etag', { 'if-none-match': 'W/"v1"' })
  t.equal(c.status, 304, 'client If-None-Match answered from cache (weak comparison)')
  t.equal(c.headers.etag, '"v1"')
  t.ok(c.headers.age !== undefined, '304 carries Age')
  const ims = await f.get('/etag', { 'if-none-match': '"other"', 'if-modified-since': 'Wed, 01 Jan 2031 00:00:00 GMT' })
  t.equal(ims.status, 200, 'If-None-Match takes precedence over If-Modified-Since')
  t.equal((await f.get('/etag', { 'if-modified-since': 'Wed, 01 Jan 2031 00:00:00 GMT' })).status, 304, 'If-Modified-Since alone')
  t.equal(f.hits('/etag'), 1)

  f.clock.now += 11_000
  const re = await f.get('/etag')
  t.equal(re.headers['x-cache'], 'REVALIDATED', 'stale entry revalidated with the upstream')
  t.equal(re.body, 'body1', 'stored body reused after 304')
  t.equal(re.headers['x-new'], '2', '304 fields update the stored headers')
  t.equal(f.hits('/etag'), 2)
  const next = await f.get('/etag')
  t.equal(next.headers['x-cache'], 'HIT', 'freshened: the next request is a hit')
  t.equal(next.headers['x-new'], '2')

  await f.get('/no-cache')
  const nc = await f.get('/no-cache')
  t.equal(nc.headers['x-cache'], 'REVALIDATED', 'no-cache revalidates every time')
  t.equal(nc.body, 'v1')
  t.equal(f.hits('/no-cache'), 2)
})

t.test('§4.4 invalidation', async (t) => {
  const f = await fixture(t, {
    '/page': (req, res, n) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(200, { location: '/other', 'content-location': 'http://elsewhere.test/page' }).end('ok'); return }
      res.writeHead(200, { ...text, 'cache-control': 'max-age=60' }).end(`v${n}`)
    },
    '/other': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60' }).end(`o${n}`),
    '/fail': (req, res, n) => {
      if (req.method === 'DELETE') { res.writeHead(500).end(); return }
      res.writeHead(200, { ...text, 'cache-control': 'max-age=60' }).end(`f${n}`)
    }
  })
  await f.get('/page')
  await f.get('/other')
  await f.get('/page', {}, 'POST')
  t.equal((await f.get('/page')).headers['x-cache'], 'MISS', 'POST invalidates the URL')
  t.equal((await f.get('/other')).headers['x-cache'], 'MISS', 'and its same-origin Location')
  await f.get('/fail')
  await f.get('/fail', {}, 'DELETE')
  t.equal((await f.get('/fail')).headers['x-cache'], 'HIT', 'an error response invalidates nothing')
  await f.get('/page', {}, 'MKCOL')
  t.equal((await f.get('/page')).headers['x-cache'], 'MISS', 'an unknown method invalidates')
})

t.test('§4.1 Vary', async (t) => {
  const f = await fixture(t, {
    '/v': (req, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', vary: 'Accept-Language' }).end(`${String(req.headers['accept-language'])}${n}`),
    '/star': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', vary: '*' }).end(`s${n}`)
  })
  t.equal((await f.get('/v', { 'accept-language': 'en' })).body, 'en1')
  t.equal((await f.get('/v', { 'accept-language': 'fr' })).body, 'fr2', 'another value is another variant')
  const en = await f.get('/v', { 'accept-language': 'en' })
  t.equal(en.body, 'en1')
  t.equal(en.headers['x-cache'], 'HIT')
  t.equal((await f.get('/v', { 'accept-language': 'fr' })).headers['x-cache'], 'HIT')
  t.equal((await f.get('/v')).body, 'undefined3', 'absent header is its own variant')
  await f.get('/star')
  await f.get('/star')
  t.equal(f.hits('/star'), 2, 'Vary: * never matches')
})

t.test('§5.1 Age, X-Cache, HEAD, theme key', async (t) => {
  const f = await fixture(t, {
    '/a': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', age: '5' }).end(`v${n}`)
  }, {}, {}, 'theme-v1')
  const miss = await f.get('/a')
  t.equal(miss.headers['x-cache'], 'MISS')
  f.clock.now += 7_000
  const hit = await f.get('/a')
  t.equal(hit.headers.age, '12', 'Age = incoming Age + resident time')
  const head = await f.get('/a', {}, 'HEAD')
  t.equal(head.body, '', 'HEAD has no body')
  t.equal(head.headers['content-length'], '2', 'but the GET entry\'s Content-Length')
  t.equal(head.headers['x-cache'], 'HIT', 'HEAD shares the GET entry')
})

t.test('RFC 5861 and site grace', async (t) => {
  let fail = false
  const f = await fixture(t, {
    '/swr': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=1, stale-while-revalidate=30' }).end(`v${n}`),
    '/sie': (_q, res, n) => {
      if (fail) { res.writeHead(503).end(); return }
      res.writeHead(200, { ...text, 'cache-control': 'max-age=1, stale-if-error=30' }).end(`v${n}`)
    },
    '/must': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=1, must-revalidate' }).end(`v${n}`)
  }, { grace: 10_000 })
  await f.get('/swr')
  f.clock.now += 5_000
  const st = await f.get('/swr')
  t.equal(st.headers['x-cache'], 'UPDATING', 'stale served while refreshing')
  t.equal(st.body, 'v1')
  await f.settled()
  t.equal(f.hits('/swr'), 2, 'one background refresh ran')
  const after = await f.get('/swr')
  t.equal(after.body, 'v2', 'then the fresh page')
  t.equal(after.headers['x-cache'], 'HIT')

  await f.get('/sie')
  f.clock.now += 5_000
  fail = true
  // the stale window (grace) serves it while refreshing; the refresh's 503 keeps the old entry
  const s1 = await f.get('/sie')
  t.equal(s1.body, 'v1')
  await f.settled()
  f.clock.now += 15_000
  const s2 = await f.get('/sie')
  t.equal(s2.headers['x-cache'], 'STALE', 'stale-if-error serves stale on a 503')
  t.equal(s2.body, 'v1')

  await f.get('/must')
  f.clock.now += 5_000
  t.equal((await f.get('/must')).body, 'v2', 'must-revalidate disables grace')
})
