// RFC 5861 stale-while-revalidate / stale-if-error and the site's grace and keep, through the real Gateway.
import t from 'tap'
import { cacheFixture, text, until } from './fixture.ts'

t.test('stale-while-revalidate: stale served as UPDATING while exactly one background refresh runs', async t => {
  let release: (() => void) | undefined
  const gate = new Promise<void>(resolve => { release = resolve })
  const f = await cacheFixture(t, {
    '/swr': (_q, res, n) => {
      const send = (): void => { res.writeHead(200, { ...text, 'cache-control': 'max-age=60, stale-while-revalidate=600', age: n === 1 ? '60' : '0' }).end(`v${n}`) }
      // The refresh is held until the burst below is done, so every request sees it running.
      if (n === 1) send()
      else void gate.then(send)
    },
  })
  await f.get('/swr')
  const burst = await Promise.all(Array.from({ length: 20 }, async () => await f.get('/swr')))
  t.same(new Set(burst.map(r => r.headers['x-cache'])), new Set(['UPDATING']), 'every request during the refresh: UPDATING')
  t.same(new Set(burst.map(r => r.body)), new Set(['v1']), 'with the stale body')
  await until(() => f.hits('/swr') === 2, 20_000, 'the refresh to reach the upstream')
  t.equal(f.hits('/swr'), 2, 'one background refresh for twenty stale hits')
  release?.()
  await until(() => f.entry('/swr')?.body.toString() === 'v2', 20_000, 'the refreshed entry')
  const after = await f.get('/swr')
  t.equal(after.headers['x-cache'], 'HIT', 'then a fresh hit')
  t.equal(after.body, 'v2')
  t.equal(f.hits('/swr'), 2)
})

t.test('site grace: out-of-band stale-while-revalidate; s-maxage turns it off', async t => {
  const f = await cacheFixture(t, {
    '/grace': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: n === 1 ? '60' : '0' }).end(`g${n}`),
    '/s-maxage': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 's-maxage=60', age: n === 1 ? '60' : '0', etag: '"s"' }).end(`s${n}`),
  }, { site: { grace: '30s', keep: '60s' } })
  await f.get('/grace')
  const g = await f.get('/grace')
  t.equal(g.headers['x-cache'], 'UPDATING', 'an expired page within grace is served while refreshing')
  t.equal(g.body, 'g1')
  await until(() => f.entry('/grace')?.body.toString() === 'g2', 20_000, 'the grace refresh')
  t.equal((await f.get('/grace')).headers['x-cache'], 'HIT')
  await f.get('/s-maxage')
  const s = await f.get('/s-maxage')
  t.not(s.headers['x-cache'], 'UPDATING', 's-maxage implies proxy-revalidate: no grace')
  t.equal(s.body, 's2')
})

t.test('stale-if-error: a failing or unreachable upstream gets the stale copy (X-Cache STALE)', async t => {
  let mode: 'ok' | '500' | '404' = 'ok'
  const f = await cacheFixture(t, {
    '/sie': (_q, res, n) => {
      if (mode === '500') { res.writeHead(500, text).end('boom'); return }
      if (mode === '404') { res.writeHead(404, text).end('gone'); return }
      res.writeHead(200, { ...text, 'cache-control': 'max-age=60, stale-if-error=600', age: '60' }).end(`v${n}`)
    },
  })
  await f.get('/sie')
  mode = '500'
  const e = await f.get('/sie')
  t.equal(e.status, 200)
  t.equal(e.headers['x-cache'], 'STALE', 'a 500 from the upstream: stale served')
  t.equal(e.body, 'v1')
  mode = '404'
  const nf = await f.get('/sie')
  t.equal(nf.status, 404, 'a 404 is an answer, not an error: passed on')
})

t.test('stale-if-error when the upstream is down altogether', async t => {
  const f = await cacheFixture(t, {
    '/down': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60, stale-if-error=600', age: '60' }).end(`d${n}`),
    '/no-sie': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: '60', etag: '"x"' }).end(`x${n}`),
  }, { site: { keep: '60s', staleIfError: '0s' } })
  await f.get('/down')
  await f.get('/no-sie')
  await f.closeUpstream()
  const r = await f.get('/down')
  t.equal(r.headers['x-cache'], 'STALE', 'connection refused: stale served')
  t.equal(r.body, 'd1')
  const n = await f.get('/no-sie')
  t.ok(n.status >= 500, `without stale-if-error, grace or the site's staleIfError: an error (${n.status})`)
})

t.test('keep: expired entries with validators are held for conditional revalidation', async t => {
  const f = await cacheFixture(t, {
    '/kept': (req, res, n) => {
      if (req.headers['if-none-match'] === '"k"') { res.writeHead(304, { etag: '"k"', 'cache-control': 'max-age=60' }).end(); return }
      res.writeHead(200, { ...text, etag: '"k"', 'cache-control': 'max-age=1' }).end(`k${n}`)
    },
  }, { site: { keep: '60s' } })
  await f.get('/kept')
  await f.untilStale('/kept')
  const r = await f.get('/kept')
  t.equal(r.headers['x-cache'], 'REVALIDATED', 'after max-age=1 the held entry is revalidated')
  t.equal(r.body, 'k1')
  t.equal((await f.get('/kept')).headers['x-cache'], 'HIT')
  t.equal(f.hits('/kept'), 2)
})

// Issue 15, item 9: pages that expire together must not take every slot with their refreshes.
t.test('background refreshes are capped at a quarter of the site\'s slots; the rest wait for a later request', async t => {
  const { subscribe, unsubscribe } = await import('node:diagnostics_channel')
  const deferred: Array<{ site: string, path: string }> = []
  const onDeferred = (m: unknown): void => { deferred.push(m as { site: string, path: string }) }
  subscribe('livery:cache:refresh_deferred', onDeferred)
  t.teardown(() => unsubscribe('livery:cache:refresh_deferred', onDeferred))
  let release: (() => void) | undefined
  const gate = new Promise<void>(resolve => { release = resolve })
  const page = (_q: unknown, res: import('node:http').ServerResponse, n: number): void => {
    const send = (): void => { res.writeHead(200, { ...text, 'cache-control': 'max-age=60, stale-while-revalidate=600', age: n === 1 ? '60' : '0' }).end(`v${n}`) }
    if (n === 1) send()
    else void gate.then(send)
  }
  const paths = ['/r0', '/r1', '/r2', '/r3', '/r4', '/r5']
  // maxConcurrent 8: at most 2 refreshes at once.
  const f = await cacheFixture(t, Object.fromEntries(paths.map(p => [p, page])), { site: { pool: { maxConcurrent: 8 } } })
  for (const p of paths) await f.get(p)
  const stale = await Promise.all(paths.map(async p => await f.get(p)))
  t.same(new Set(stale.map(r => r.headers['x-cache'])), new Set(['UPDATING']), 'every stale page is still served at once')
  await until(() => paths.reduce((n, p) => n + f.hits(p), 0) === paths.length + 2, 20_000, 'two refreshes to reach the upstream')
  t.equal(deferred.length, 4, 'the other four were deferred, not queued for a slot')
  t.same(new Set(deferred.map(d => d.site)), new Set(['cached']), 'each deferral names its site')
  release?.()
  const refreshed = paths.filter(p => f.hits(p) === 2)
  await until(() => refreshed.every(p => f.entry(p)?.body.toString() === 'v2'), 20_000, 'the two refreshes to land')
  const later = paths.find(p => f.hits(p) === 1)!
  t.equal((await f.get(later)).headers['x-cache'], 'UPDATING', 'a deferred page is refreshed by the next request for it')
  await until(() => f.entry(later)?.body.toString() === 'v2', 20_000, 'the deferred page\'s refresh')
  t.equal(f.hits(later), 2, 'one upstream request for it')
})
