// Themed pages through the real Gateway: cached as themed output under a key
// that carries the theme version, so a theme change stops serving old pages.
import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { cacheFixture } from './fixture.ts'

const rules = `<?xml version="1.0" encoding="UTF-8"?>
<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html" />
  <replace css:theme-children="#slot" css:content-children="#main" />
</rules>
`
const themePage = (brand: string): string =>
  `<!DOCTYPE html><html><head><title>t</title></head><body><h1 id="brand">${brand}</h1><div id="slot">placeholder</div></body></html>`

t.test('a themed page is cached themed; a theme change is picked up within fetch.ttl + fetch.wait', async t => {
  let brand = 'Theme A'
  let themeFetches = 0
  const themeServer = createServer((req, res) => {
    themeFetches++
    if (req.url !== '/theme.html') { res.writeHead(404).end(); return }
    // No caching headers: the fetch pool keeps the copy for fetch.ttl.
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(themePage(brand))
  })
  await new Promise<void>(resolve => themeServer.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { themeServer.close(() => resolve()); themeServer.closeAllConnections() }))
  const themeUrl = `http://127.0.0.1:${(themeServer.address() as AddressInfo).port}`
  const dir = t.testdir({ 'rules.xml': rules })

  const ttl = 1_000
  const wait = 200
  const f = await cacheFixture(t, {
    '/page': (_q, res, n) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'max-age=600' })
      .end(`<!DOCTYPE html><html><head><title>c</title></head><body><div id="main"><p>content ${n}</p></div></body></html>`),
  }, {
    site: { theme: { rules: join(dir, 'rules.xml'), base: themeUrl + '/' } },
    raw: { fetch: { ttl: `${ttl}ms`, minTtl: `${ttl}ms`, wait: `${wait}ms` } },
  })
  const first = await f.get('/page')
  t.equal(first.headers['x-cache'], 'MISS')
  t.match(first.body, /Theme A/, 'themed with the theme')
  t.match(first.body, /content 1/, 'around the content')
  t.notMatch(first.body, /placeholder/)
  const hit = await f.get('/page')
  t.equal(hit.headers['x-cache'], 'HIT', 'the themed page is served from the cache')
  t.equal(hit.body, first.body, 'as themed output, byte for byte')
  t.equal(f.hits('/page'), 1, 'without asking the upstream again')

  const fetchesBefore = themeFetches
  brand = 'Theme B'
  const changed = performance.now()
  let last = hit
  const deadline = changed + ttl + wait + 4_000
  let lastOld = 0
  // A bounded poll: each round asks for the page and checks which theme it carries.
  while (!/Theme B/.test(last.body) && performance.now() < deadline) {
    last = await f.get('/page')
    if (/Theme A/.test(last.body)) lastOld = performance.now() - changed
    await new Promise<void>(resolve => { setTimeout(resolve, 50).unref() })
  }
  const switched = performance.now() - changed
  // 500 ms of slack: the coarse clock's 100 ms steps and a loaded machine.
  t.ok(lastOld < ttl + wait + 500, `the old themed page was last served ${Math.round(lastOld)} ms after the change (≤ fetch.ttl + fetch.wait + slack)`)
  t.match(last.body, /Theme B/, `the new theme is served after ${Math.round(switched)} ms (fetch.ttl ${ttl} ms + fetch.wait ${wait} ms)`)
  t.ok(themeFetches > fetchesBefore, 'the theme was fetched again')
  const after = await f.get('/page')
  t.match(after.body, /Theme B/)
  t.equal(after.headers['x-cache'], 'HIT', 'the newly themed page is cached too')
  t.equal(f.hits('/page'), 2, 'the content was fetched once more, for the new theme version')
})

t.test('a themed page without caching headers is not shared: storability is the upstream\'s, not the synthesised ETag\'s', async t => {
  const themeServer = createServer((req, res) => {
    if (req.url !== '/theme.html') { res.writeHead(404).end(); return }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(themePage('Brand'))
  })
  await new Promise<void>(resolve => themeServer.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { themeServer.close(() => resolve()); themeServer.closeAllConnections() }))
  const themeUrl = `http://127.0.0.1:${(themeServer.address() as AddressInfo).port}`
  const dir = t.testdir({ 'rules.xml': rules })
  const f = await cacheFixture(t, {
    // a per-visitor render (a CSRF nonce, a greeting): no Cache-Control, no validators
    '/private-ish': (_q, res, n) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      .end(`<!DOCTYPE html><html><head><title>c</title></head><body><div id="main"><p>nonce-${n}</p></div></body></html>`),
  }, { site: { theme: { rules: join(dir, 'rules.xml'), base: themeUrl + '/' } } })
  const a = await f.get('/private-ish')
  t.match(a.body, /Brand/, 'themed')
  t.match(a.body, /nonce-1/)
  t.ok(a.headers.etag !== undefined, 'the themed page carries the synthesised ETag')
  const b = await f.get('/private-ish')
  t.match(b.body, /nonce-2/, 'the next visitor gets their own render')
  t.not(b.headers['x-cache'], 'HIT')
  const c = await f.get('/private-ish', { 'if-none-match': String(b.headers.etag) })
  t.equal(c.status, 200, 'no 304 from a copy that was never stored')
  t.match(c.body, /nonce-3/)
  await f.closeUpstream()
  const d = await f.get('/private-ish')
  t.ok(d.status >= 500, `with the upstream down, an error, not someone else's page (${d.status})`)
  t.notMatch(d.body, /nonce-/)
})
