// Freshness and conditional refresh: changed content is picked up after ttl,
// a 304 keeps the body, minTtl is a floor whatever the origin says.
import t from 'tap'
import { freshnessLifetime } from '../../src/fetcher/index.ts'
import { config, fakeClock, makePool, startServer } from './helpers.ts'

t.test('changed content is picked up after ttl, with a new version', async t => {
  let body = 'v1'
  const server = await startServer(t, (_req, res) => { res.writeHead(200, { 'content-type': 'text/css' }); res.end(body) })
  const clock = fakeClock()
  const cfg = config({ ttl: 1000, minTtl: 200 })
  const pool = makePool(t, cfg, { now: clock.now })
  const url = server.url('/site.css')
  const v1 = await pool.get(url)
  t.equal(v1.resource.freshUntil - v1.resource.fetchedAt, cfg.ttl, 'no caching headers: ttl')
  body = 'v2'
  clock.advance(cfg.ttl - 1)
  t.equal((await pool.get(url)).resource.body.toString(), 'v1', 'fresh until ttl')
  clock.advance(1)
  const v2 = await pool.get(url)
  t.equal(v2.state, 'refreshed')
  t.equal(v2.resource.body.toString(), 'v2')
  t.not(v2.resource.version, v1.resource.version, 'the version follows the body')
  t.equal(server.requests.length, 2)
})

t.test('conditional refresh: a 304 keeps the body, renews freshness and merges headers', async t => {
  let revision = 1
  const server = await startServer(t, (req, res) => {
    if (req.headers['if-none-match'] === '"r1"') {
      res.writeHead(304, { etag: '"r1"', 'cache-control': 'max-age=2', 'x-revision-checked': String(revision) })
      res.end()
      return
    }
    res.writeHead(200, { etag: '"r1"', 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT', 'cache-control': 'max-age=1', 'content-type': 'text/html' })
    res.end('<html>r1</html>')
  })
  const clock = fakeClock()
  const pool = makePool(t, config({ minTtl: 100 }), { now: clock.now })
  const url = server.url('/theme.html')
  const first = await pool.get(url)
  t.equal(first.resource.freshUntil - first.resource.fetchedAt, 1000, 'max-age honoured')

  clock.advance(1000)
  revision = 2
  const second = await pool.get(url)
  t.equal(second.state, 'refreshed')
  t.equal(second.resource.body, first.resource.body, 'the same body buffer is kept')
  t.equal(second.resource.version, '"r1"')
  t.equal(second.resource.freshUntil - second.resource.fetchedAt, 2000, "the 304's max-age renews freshness")
  t.equal(second.resource.headers['x-revision-checked'], '2', "the 304's headers are merged")
  t.equal(second.resource.headers['content-type'], 'text/html', 'stored headers kept')

  const [, cond] = server.requests
  t.equal(cond.headers['if-none-match'], '"r1"')
  t.equal(cond.headers['if-modified-since'], 'Mon, 01 Jan 2024 00:00:00 GMT')
  t.same(Object.keys(cond.headers).sort(), ['accept', 'accept-encoding', 'connection', 'host', 'if-modified-since', 'if-none-match', 'user-agent'],
    'only the pool\'s own headers go to the origin')
  t.equal(pool.peek(url)?.freshUntil, second.resource.freshUntil, 'the renewed copy is stored')
})

t.test('minTtl is a floor, even for no-store and max-age=0', async t => {
  const server = await startServer(t, (req, res) => {
    res.writeHead(200, { 'cache-control': req.url === '/a' ? 'no-store' : 'max-age=0' })
    res.end('x')
  })
  const clock = fakeClock()
  const cfg = config({ minTtl: 500 })
  const pool = makePool(t, cfg, { now: clock.now })
  for (const path of ['/a', '/b']) {
    await pool.get(server.url(path))
    clock.advance(cfg.minTtl - 1)
    t.equal((await pool.get(server.url(path))).state, 'fresh', `${path} fresh within minTtl`)
    clock.advance(1)
    t.equal((await pool.get(server.url(path))).state, 'refreshed', `${path} asked again after minTtl`)
  }
  t.equal(server.requests.length, 4)
})

t.test('freshnessLifetime reads the caching headers', async t => {
  const limits = { ttl: 60_000, minTtl: 5000 }
  const now = Date.parse('Mon, 01 Jan 2024 00:00:00 GMT')
  t.equal(freshnessLifetime({}, now, limits), 60_000, 'nothing declared: ttl')
  t.equal(freshnessLifetime({ 'cache-control': 'max-age=300' }, now, limits), 300_000)
  t.equal(freshnessLifetime({ 'cache-control': 'public, max-age=300, s-maxage="600"' }, now, limits), 600_000, 's-maxage wins for a shared cache')
  t.equal(freshnessLifetime({ 'cache-control': 'max-age=300', age: '100' }, now, limits), 200_000, 'Age is subtracted')
  t.equal(freshnessLifetime({ 'cache-control': 'max-age=1' }, now, limits), 5000, 'minTtl floor')
  t.equal(freshnessLifetime({ 'cache-control': 'no-cache, max-age=600' }, now, limits), 5000, 'no-cache: minTtl')
  t.equal(freshnessLifetime({ expires: 'Mon, 01 Jan 2024 00:10:00 GMT', date: 'Mon, 01 Jan 2024 00:00:00 GMT' }, now + 999_999, limits), 600_000, 'Expires - Date')
  t.equal(freshnessLifetime({ expires: 'Mon, 01 Jan 2024 00:02:00 GMT' }, now, limits), 120_000, 'Expires - now without Date')
  t.equal(freshnessLifetime({ expires: '0' }, now, limits), 5000, 'invalid Expires means expired')
  t.equal(freshnessLifetime({ 'cache-control': 'max-age=abc' }, now, limits), 60_000, 'unparsable max-age ignored')
})
