// RFC 9213 targeted cache control (CDN-Cache-Control, Livery's own field) and Surrogate-Control, through the real Gateway.
import t from 'tap'
import { cacheFixture, text } from './fixture.ts'

const stored = async (f: Awaited<ReturnType<typeof cacheFixture>>, p: string): Promise<{ first: Awaited<ReturnType<typeof f.get>>, second: Awaited<ReturnType<typeof f.get>>, hit: boolean }> => {
  const before = f.hits(p)
  const first = await f.get(p)
  const second = await f.get(p)
  return { first, second, hit: second.headers['x-cache'] === 'HIT' && f.hits(p) === before + 1 }
}

t.test('CDN-Cache-Control replaces Cache-Control and Expires for Livery, and is forwarded', async t => {
  const f = await cacheFixture(t, {
    '/cdn-long': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=600' }).end(`v${n}`),
    '/cdn-no-store': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', 'cdn-cache-control': 'no-store' }).end(`v${n}`),
    '/cdn-private': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', 'cdn-cache-control': 'private' }).end(`v${n}`),
    '/cdn-no-cache': (req, res, n) => {
      if (req.headers['if-none-match'] === '"c"') { res.writeHead(304, { etag: '"c"', 'cdn-cache-control': 'no-cache' }).end(); return }
      res.writeHead(200, { ...text, etag: '"c"', 'cache-control': 'max-age=600', 'cdn-cache-control': 'no-cache' }).end(`v${n}`)
    },
    '/cdn-expires': (_q, res, n) => res.writeHead(200, { ...text, expires: 'Thu, 01 Jan 1970 00:00:00 GMT', 'cdn-cache-control': 'max-age=600' }).end(`v${n}`),
    '/cdn-invalid': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', 'cdn-cache-control': 'max-age=0,, no-store' }).end(`v${n}`),
    '/cdn-empty': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', 'cdn-cache-control': '' }).end(`v${n}`),
  })
  const long = await stored(f, '/cdn-long')
  t.ok(long.hit, 'CDN-Cache-Control: max-age=600 wins over Cache-Control: no-store')
  t.equal(long.second.headers['cdn-cache-control'], 'max-age=600', 'CDN-Cache-Control is forwarded (RFC 9213 §3)')
  t.equal(long.second.headers['cache-control'], 'no-store', 'and Cache-Control, for the caches behind us')
  t.notOk((await stored(f, '/cdn-no-store')).hit, 'CDN-Cache-Control: no-store wins over max-age')
  t.notOk((await stored(f, '/cdn-private')).hit, 'CDN-Cache-Control: private')
  const nc = await stored(f, '/cdn-no-cache')
  t.equal(nc.second.headers['x-cache'], 'REVALIDATED', 'CDN-Cache-Control: no-cache is revalidated every time')
  t.ok((await stored(f, '/cdn-expires')).hit, 'Expires is ignored when a targeted field applies')
  t.ok((await stored(f, '/cdn-invalid')).hit, 'an invalid dictionary is ignored: Cache-Control applies')
  t.ok((await stored(f, '/cdn-empty')).hit, 'an empty value is ignored')
})

t.test('Livery-Cache-Control wins over everything and is never forwarded; the name is configurable', async t => {
  const f = await cacheFixture(t, {
    '/own': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'no-store', 'cdn-cache-control': 'no-store', 'livery-cache-control': 'max-age=600' }).end(`v${n}`),
    '/edge': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'no-store', 'x-edge-control': 'max-age=600' }).end(`v${n}`),
  }, { site: { targetedField: 'X-Edge-Control' } })
  const own = await stored(f, '/own')
  t.notOk(own.hit, 'with another name configured, Livery-Cache-Control is only a header')
  const edge = await stored(f, '/edge')
  t.ok(edge.hit, 'the configured field applies')
  t.equal(edge.first.headers['x-edge-control'], undefined, 'not forwarded on a miss')
  t.equal(edge.second.headers['x-edge-control'], undefined, 'nor on a hit')

  const g = await cacheFixture(t, {
    '/own': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'no-store', 'cdn-cache-control': 'no-store', 'livery-cache-control': 'max-age=600' }).end(`v${n}`),
  })
  const d = await stored(g, '/own')
  t.ok(d.hit, 'by default Livery-Cache-Control is the field, over CDN-Cache-Control and Cache-Control')
  t.equal(d.first.headers['livery-cache-control'], undefined, 'not forwarded on a miss')
  t.equal(d.second.headers['livery-cache-control'], undefined, 'nor on a hit')
  t.equal(d.second.headers['cdn-cache-control'], 'no-store')
})

t.test('Surrogate-Control (Varnish, Fastly): max-age and no-store, stripped before the client', async t => {
  const f = await cacheFixture(t, {
    '/sc': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=0', 'surrogate-control': 'max-age=600, content="ESI/1.0"' }).end(`v${n}`),
    '/sc-no-store': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', 'surrogate-control': 'no-store' }).end(`v${n}`),
    '/sc-over-cdn': (_q, res, n) => res.writeHead(200, { ...text, 'cdn-cache-control': 'no-store', 'surrogate-control': 'max-age=600' }).end(`v${n}`),
  })
  const sc = await stored(f, '/sc')
  t.ok(sc.hit, 'Surrogate-Control: max-age=600 wins over Cache-Control: max-age=0')
  t.equal(sc.first.headers['surrogate-control'], undefined, 'stripped on a miss')
  t.equal(sc.second.headers['surrogate-control'], undefined, 'and on a hit')
  t.equal(sc.second.headers['cache-control'], 'max-age=0', 'Cache-Control goes on to browsers')
  t.notOk((await stored(f, '/sc-no-store')).hit, 'Surrogate-Control: no-store')
  t.ok((await stored(f, '/sc-over-cdn')).hit, 'Surrogate-Control before CDN-Cache-Control, as Fastly')
})
