// Issue 11: the defaults of a site that sets nothing, through the real Gateway and config parsing.
import t from 'tap'
import { cacheFixture, text } from './fixture.ts'

t.test('defaults: no stale page unless the origin allows it (grace 0s)', async t => {
  const f = await cacheFixture(t, {
    // stale on arrival (Age = max-age), no validators: only a stale window could keep it
    '/expired': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: '60' }).end(`e${n}`),
    '/swr': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60, stale-while-revalidate=600', age: '60' }).end(`s${n}`),
  })
  t.equal(f.gateway.config.sites[0].grace, 0, 'grace defaults to 0s')
  await f.get('/expired')
  const r = await f.get('/expired')
  t.equal(r.body, 'e2', 'an expired page is fetched again, not served stale')
  t.equal(r.headers['x-cache'], 'MISS')
  await f.get('/swr')
  const s = await f.get('/swr')
  t.equal(s.headers['x-cache'], 'UPDATING', 'the origin\'s stale-while-revalidate still allows it')
  t.equal(s.body, 's1')
})

t.test('defaults: staleIfError serves the expired copy when the upstream fails', async t => {
  let fail = false
  const f = await cacheFixture(t, {
    '/p': (_q, res, n) => {
      if (fail) { res.writeHead(503, text).end('down'); return }
      res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: '60' }).end(`p${n}`)
    },
    '/q': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: '60' }).end(`q${n}`),
    '/must': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60, must-revalidate', age: '60' }).end(`m${n}`),
  })
  t.equal(f.gateway.config.sites[0].staleIfError, 3_600_000, 'staleIfError defaults to 1h')
  await f.get('/p')
  fail = true
  const e = await f.get('/p')
  t.equal(e.status, 200, 'a 503 from the upstream: the stale copy instead')
  t.equal(e.headers['x-cache'], 'STALE')
  t.equal(e.body, 'p1')
  await f.get('/q')
  await f.get('/must')
  await f.closeUpstream()
  const q = await f.get('/q')
  t.equal(q.headers['x-cache'], 'STALE', 'connection refused: the stale copy')
  t.equal(q.body, 'q1')
  const m = await f.get('/must')
  t.ok(m.status >= 500, `must-revalidate forbids it (${m.status})`)
})

t.test('defaults: keep holds entries with validators and revalidates them conditionally', async t => {
  const seen: string[] = []
  const f = await cacheFixture(t, {
    '/v': (req, res, n) => {
      seen.push(`${String(req.headers['if-none-match'])} ${String(req.headers['if-modified-since'])} ${String(req.headers['accept-language'])}`)
      if (req.headers['if-none-match'] === '"v1"') {
        res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60', 'x-updated': String(n), 'content-type': 'text/html', 'content-length': '999' }).end()
        return
      }
      res.writeHead(200, { ...text, etag: '"v1"', 'last-modified': 'Tue, 01 Jan 2030 00:00:00 GMT', 'cache-control': 'max-age=60', age: '60', vary: 'accept-language', 'x-updated': '0' }).end('body')
    },
  })
  t.equal(f.gateway.config.sites[0].keep, 3_600_000, 'keep defaults to 1h')
  await f.get('/v', { 'accept-language': 'fr' })
  const r = await f.get('/v', { 'accept-language': 'fr' })
  t.equal(r.headers['x-cache'], 'REVALIDATED', 'the expired entry was revalidated')
  t.equal(r.body, 'body')
  t.equal(seen[1], '"v1" Tue, 01 Jan 2030 00:00:00 GMT fr', 'conditional request with both validators and the Vary-named header')
  t.equal(r.headers['x-updated'], '2', 'the client gets the headers the 304 updated')
  t.equal(r.headers['content-type'], 'text/html', 'Content-Type is updated too (RFC 9111 §3.2)')
  t.equal(r.headers['content-length'], '4', 'framing fields are not')
  const h = await f.get('/v', { 'accept-language': 'fr' })
  t.equal(h.headers['x-cache'], 'HIT')
  t.equal(h.headers['x-updated'], '2')
})

t.test('request directives: max-stale, min-fresh, max-age, only-if-cached, no-cache', async t => {
  const f = await cacheFixture(t, {
    '/old': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: '100' }).end(`o${n}`),
    '/new': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', age: '100' }).end(`n${n}`),
  })
  await f.get('/old')
  const ms = await f.get('/old', { 'cache-control': 'max-stale=60' })
  t.equal(ms.body, 'o1', 'max-stale=60 takes a page 40 s stale')
  t.equal(ms.headers['x-cache'], 'STALE')
  t.equal((await f.get('/old', { 'cache-control': 'max-stale=10' })).body, 'o2', 'max-stale=10 does not')
  const oic = await f.get('/old', { 'cache-control': 'only-if-cached' })
  t.equal(oic.status, 504, 'only-if-cached with only a stale copy: 504')
  await f.get('/new')
  t.equal((await f.get('/new', { 'cache-control': 'max-age=200' })).headers['x-cache'], 'HIT', 'max-age above the age')
  t.equal((await f.get('/new', { 'cache-control': 'max-age=50' })).body, 'n2', 'max-age below the age: refetched')
  t.equal((await f.get('/new', { 'cache-control': 'min-fresh=590' })).body, 'n3', 'min-fresh beyond the remaining lifetime')
  t.equal((await f.get('/new', { 'cache-control': 'only-if-cached' })).headers['x-cache'], 'HIT', 'only-if-cached with a fresh copy')
  t.equal((await f.get('/new', { pragma: 'no-cache' })).body, 'n4', 'Pragma: no-cache without Cache-Control')
})

t.test('a 304 that makes the entry unstorable: the client still gets the updated headers, the entry goes', async t => {
  const f = await cacheFixture(t, {
    '/gone-private': (req, res, n) => {
      if (req.headers['if-none-match'] === '"g"') { res.writeHead(304, { etag: '"g"', 'cache-control': 'private', 'x-state': 'private' }).end(); return }
      res.writeHead(200, { ...text, etag: '"g"', 'cache-control': 'max-age=60', age: '60', 'x-state': 'public' }).end(`g${n}`)
    },
    '/public-302': (_q, res, n) => res.writeHead(302, { ...text, location: '/x', 'cache-control': 'public', 'last-modified': new Date(Date.now() - 100 * 86_400_000).toUTCString() }).end(`r${n}`),
  })
  await f.get('/gone-private')
  const r = await f.get('/gone-private')
  t.equal(r.headers['x-cache'], 'REVALIDATED')
  t.equal(r.body, 'g1')
  t.equal(r.headers['x-state'], 'private', 'the 304\'s headers, not the stored ones')
  t.equal(r.headers['cache-control'], 'private')
  t.equal(f.entry('/gone-private'), undefined, 'and the entry is no longer stored')
  await f.get('/public-302')
  t.equal((await f.get('/public-302')).headers['x-cache'], 'HIT', 'public allows heuristic freshness for any status (§4.2.2)')
})
