// RFC 9111 §4.3 (validation) through the real Gateway and a real upstream.
import t from 'tap'
import { cacheFixture, text } from './fixture.ts'

const lm = 'Tue, 01 Jan 2030 00:00:00 GMT'

t.test('§4.3.2 client conditionals are answered from the cache', async t => {
  const f = await cacheFixture(t, {
    '/etag': (_q, res, n) => res.writeHead(200, { ...text, etag: '"v1"', 'last-modified': lm, 'cache-control': 'max-age=60', vary: 'accept-language', 'x-other': 'o' }).end(`body${n}`),
    '/lm': (_q, res, n) => res.writeHead(200, { ...text, 'last-modified': lm, 'cache-control': 'max-age=60' }).end(`lm${n}`),
  })
  await f.get('/etag')
  const inm = await f.get('/etag', { 'if-none-match': '"v1"' })
  t.equal(inm.status, 304, 'If-None-Match matching the stored ETag: 304')
  t.equal(inm.body, '', 'without a body')
  t.equal(inm.headers.etag, '"v1"', 'carrying the stored ETag')
  t.equal(inm.headers['cache-control'], 'max-age=60', 'and Cache-Control')
  t.equal(inm.headers.vary, 'accept-language', 'and Vary')
  t.equal(inm.headers['x-other'], undefined, 'not other representation metadata')
  t.ok(inm.headers.age !== undefined, 'with Age')
  t.equal(inm.headers['x-cache'], 'HIT')
  t.equal((await f.get('/etag', { 'if-none-match': 'W/"v1"' })).status, 304, 'weak comparison')
  t.equal((await f.get('/etag', { 'if-none-match': '"x", "v1"' })).status, 304, 'any member of the list')
  t.equal((await f.get('/etag', { 'if-none-match': '*' })).status, 304, '* matches a stored representation')
  const miss = await f.get('/etag', { 'if-none-match': '"other"' })
  t.equal(miss.status, 200, 'a non-matching ETag: the full response')
  t.equal(miss.body, 'body1')
  const both = await f.get('/etag', { 'if-none-match': '"other"', 'if-modified-since': 'Wed, 01 Jan 2031 00:00:00 GMT' })
  t.equal(both.status, 200, 'If-None-Match takes precedence over a matching If-Modified-Since')
  const both2 = await f.get('/etag', { 'if-none-match': '"v1"', 'if-modified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' })
  t.equal(both2.status, 304, 'and over a non-matching one')
  t.equal((await f.get('/etag', { 'if-modified-since': 'Wed, 01 Jan 2031 00:00:00 GMT' })).status, 304, 'If-Modified-Since alone, after Last-Modified: 304')
  t.equal((await f.get('/etag', { 'if-modified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' })).status, 200, 'before Last-Modified: 200')
  t.equal((await f.get('/etag', { 'if-modified-since': 'garbage' })).status, 200, 'an invalid date is ignored')
  t.equal(f.hits('/etag'), 1, 'all of it from one upstream response')
  await f.get('/lm')
  const ims = await f.get('/lm', { 'if-modified-since': 'Wed, 01 Jan 2031 00:00:00 GMT' })
  t.equal(ims.status, 304)
  t.equal(ims.headers['last-modified'], lm, 'without an ETag, the 304 carries Last-Modified')
  t.equal(f.hits('/lm'), 1)
})

t.test('§4.3.1/§4.3.4 revalidation: a 304 freshens the entry, the next request is a hit', async t => {
  const seen: Array<Record<string, unknown>> = []
  const f = await cacheFixture(t, {
    // Age = max-age: stale on arrival, held by `keep` for conditional revalidation.
    '/r': (req, res, n) => {
      seen.push({ inm: req.headers['if-none-match'], ims: req.headers['if-modified-since'] })
      if (req.headers['if-none-match'] === '"r1"') {
        res.writeHead(304, { etag: '"r1"', 'cache-control': 'max-age=60', 'x-rev': String(n) }).end()
        return
      }
      res.writeHead(200, { ...text, etag: '"r1"', 'last-modified': lm, 'cache-control': 'max-age=60', age: '60', 'x-rev': String(n) }).end('stored body')
    },
    '/changed': (req, res, n) => {
      if (n === 1) { res.writeHead(200, { ...text, etag: '"c1"', 'cache-control': 'max-age=60', age: '60' }).end('old'); return }
      t.equal(req.headers['if-none-match'], '"c1"', 'the revalidation is conditional')
      res.writeHead(200, { ...text, etag: '"c2"', 'cache-control': 'max-age=60' }).end('new')
    },
  }, { site: { keep: '60s' } })
  const first = await f.get('/r')
  t.equal(first.headers['x-cache'], 'MISS')
  const re = await f.get('/r', { 'if-none-match': '"client-own"' })
  t.equal(re.headers['x-cache'], 'REVALIDATED', 'the stale entry is revalidated with the upstream')
  t.equal(re.status, 200, 'the client\'s non-matching validator gets the full response')
  t.equal(re.body, 'stored body', 'the stored body is reused after 304')
  t.equal(re.headers['x-rev'], '2', 'the 304\'s fields update the stored headers')
  t.same(seen[1], { inm: '"r1"', ims: lm }, 'the gateway sent its own validators, not the client\'s')
  const next = await f.get('/r')
  t.equal(next.headers['x-cache'], 'HIT', 'freshened: the next request is a hit, not another fetch')
  t.equal(next.headers['x-rev'], '2')
  t.equal(f.hits('/r'), 2)

  await f.get('/changed')
  const c = await f.get('/changed')
  t.equal(c.body, 'new', 'a 200 to the conditional request replaces the entry')
  t.equal(c.headers['x-cache'], 'MISS')
  t.equal((await f.get('/changed')).body, 'new')
  t.equal(f.hits('/changed'), 2)
})

t.test('§4.3.4 a 304 whose validator selects nothing does not update the entry', async t => {
  const f = await cacheFixture(t, {
    '/mismatch': (req, res, n) => {
      if (req.headers['if-none-match'] !== undefined) { res.writeHead(304, { etag: '"other"', 'cache-control': 'max-age=60' }).end(); return }
      res.writeHead(200, { ...text, etag: '"m1"', 'cache-control': 'max-age=60', age: '60' }).end(`m${n}`)
    },
  }, { site: { keep: '60s' } })
  await f.get('/mismatch')
  await f.get('/mismatch')
  const third = await f.get('/mismatch')
  t.not(third.headers['x-cache'], 'HIT', 'the entry was not freshened by a 304 for another representation')
  t.equal(f.hits('/mismatch'), 3)
})

t.test('no-cache: stored, but revalidated on every request', async t => {
  const f = await cacheFixture(t, {
    '/nc': (req, res, n) => {
      if (req.headers['if-none-match'] === '"n"') { res.writeHead(304, { etag: '"n"', 'cache-control': 'no-cache' }).end(); return }
      res.writeHead(200, { ...text, etag: '"n"', 'cache-control': 'no-cache, max-age=600' }).end(`v${n}`)
    },
  }, { site: { keep: '60s' } }) // an entry that is stale at once is held only by `keep`
  await f.get('/nc')
  for (let i = 2; i <= 4; i++) {
    const r = await f.get('/nc')
    t.equal(r.headers['x-cache'], 'REVALIDATED', `request ${i} revalidates`)
    t.equal(r.body, 'v1', 'and is served the stored body')
    t.equal(f.hits('/nc'), i)
  }
})

t.test('§4.2.4 must-revalidate: never served stale, not even within grace or on error', async t => {
  let failing = false
  const f = await cacheFixture(t, {
    '/must': (_q, res, n) => {
      if (failing) { res.writeHead(503, text).end('down'); return }
      res.writeHead(200, { ...text, etag: '"m"', 'cache-control': 'max-age=60, must-revalidate, stale-while-revalidate=60, stale-if-error=60', age: '60' }).end(`m${n}`)
    },
    '/relaxed': (_q, res, n) => {
      if (failing) { res.writeHead(503, text).end('down'); return }
      res.writeHead(200, { ...text, etag: '"r"', 'cache-control': 'max-age=60', age: '60' }).end(`r${n}`)
    },
  }, { site: { grace: '30s', keep: '60s' } })
  await f.get('/must')
  await f.get('/relaxed')
  failing = true
  const m = await f.get('/must')
  t.equal(m.status, 503, 'must-revalidate: the upstream\'s error, not the stale page')
  t.not(m.headers['x-cache'], 'STALE')
  const r = await f.get('/relaxed')
  t.equal(r.status, 200, 'control: without must-revalidate grace serves the stale page')
  t.equal(r.body, 'r1')
  t.equal(r.headers['x-cache'], 'UPDATING')
})
