import t from 'tap'
import { createServer, type Server } from 'node:http'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync, gunzipSync, brotliDecompressSync } from 'node:zlib'
import type { AddressInfo } from 'node:net'
import { ThemeEngine, createDefaultLoader, transformCompiled } from '../../src/theme/index.ts'
import { hasCode } from '../../src/errors.ts'

const demoDir = join(import.meta.dirname, '../../src/demo/theme')
const page = (title: string, extra = ''): string => `<html><head><title>${title}</title><link rel="stylesheet" href="/cms.css"><meta name="description" content="About ${title}"></head>
<body class="section-home"><nav id="portal-globalnav"><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li></ul></nav>
<main id="content"><h1 class="documentFirstHeading">${title}</h1><p>Caf\u00e9 text.</p>${extra}</main><footer id="portal-footer"><p>CMS footer</p></footer></body></html>`

async function themeServer (t: { teardown: (fn: () => Promise<void>) => void }): Promise<{ base: string, hits: () => number, setTheme: (html: string | null) => void }> {
  let hits = 0
  let override: string | null = null
  let down = false
  const server: Server = createServer((req, res) => {
    hits++
    void (async () => {
      if (down) { res.writeHead(503).end(); return }
      const name = (req.url ?? '/').slice(1)
      if (name === 'theme.html' && override !== null) { res.writeHead(200, { 'content-type': 'text/html', etag: `"${override.length}"` }).end(override); return }
      try {
        const body = await readFile(join(demoDir, name))
        res.writeHead(200, { 'content-type': name.endsWith('.css') ? 'text/css' : 'text/html', etag: '"v1"' }).end(body)
      } catch { res.writeHead(404).end() }
    })()
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  const port = (server.address() as AddressInfo).port
  return { base: `http://127.0.0.1:${port}/`, hits: () => hits, setTheme: html => { if (html === 'DOWN') down = true; else override = html } }
}


t.test('the demo rules theme a CMS page fetched over HTTP', async t => {
  const srv = await themeServer(t)
  const engine = new ThemeEngine({ rulesFile: join(demoDir, 'rules.xml'), themeBase: srv.base, absolutePrefix: srv.base, loader: createDefaultLoader() })
  t.teardown(() => engine.close())
  await engine.load()
  t.match(engine.version, /^[0-9a-f]{16}$/)
  const r = await engine.apply({ url: 'http://site.test/news', headers: { 'content-type': 'text/html; charset=utf-8', etag: '"c1"' }, requestHeaders: {}, body: Buffer.from(page('News')) })
  t.equal(r.kind, 'themed')
  if (r.kind !== 'themed') return
  const html = r.body.toString()
  t.match(html, /<title>News<\/title>/)
  t.match(html, new RegExp(`<link rel="stylesheet" href="${srv.base}style.css">`))
  t.notMatch(html, /cms\.css/)
  t.match(html, /<nav id="site-nav" aria-label="Main"><ul><li><a href="\/">Home<\/a><\/li><li><a href="\/news">News<\/a><\/li><\/ul><\/nav>/)
  t.match(html, /<article id="site-content"><main id="content"><h1 class="documentFirstHeading">News<\/h1>/)
  t.match(html, /<div class="wrap" id="site-footer"><p>CMS footer<\/p>\s*<p class="credits">/)
  t.match(html, /<body class="livery-theme section-home">/)
  t.match(html, /Caf\u00e9/)
  t.equal(r.headers['content-type'], 'text/html; charset=utf-8')
  t.equal(r.headers['content-length'], String(r.body.length))
  t.match(r.headers.etag, /^W\/"lt-[\w-]+"$/)
  t.equal(r.themeVersion, engine.version)
  const again = await engine.apply({ url: 'http://site.test/news', headers: { 'content-type': 'text/html', etag: '"c2"' }, requestHeaders: {}, body: Buffer.from(page('News')) })
  t.not(again.kind === 'themed' && again.headers.etag, r.headers.etag, 'the etag follows the content validator')
  t.same(engine.stats().themed, 2)
})

t.test('gzip and br bodies are decoded; output is compressed when accepted; charset is honoured', async t => {
  const srv = await themeServer(t)
  const engine = new ThemeEngine({ rulesFile: join(demoDir, 'rules.xml'), themeBase: srv.base, loader: createDefaultLoader() })
  t.teardown(() => engine.close())
  await engine.load()
  const latin = Buffer.from(page('Caf\u00e9 latin', '<p>' + 'x'.repeat(3000) + '</p>'), 'latin1')
  const r = await engine.apply({
    url: 'http://site.test/', headers: { 'content-type': 'text/html; charset=iso-8859-1', 'content-encoding': 'gzip' },
    requestHeaders: { 'accept-encoding': 'gzip, br;q=0' }, body: gzipSync(latin)
  })
  t.equal(r.kind, 'themed')
  if (r.kind !== 'themed') return
  t.equal(r.headers['content-encoding'], 'gzip')
  t.equal(r.headers.vary, 'Accept-Encoding')
  const html = gunzipSync(r.body).toString('utf8')
  t.match(html, /<title>Caf\u00e9 latin<\/title>/)
  t.match(html, /<meta charset="utf-8">/)
  const br = await engine.apply({ url: 'http://site.test/', headers: { 'content-type': 'text/html' }, requestHeaders: { 'accept-encoding': 'gzip, br' }, body: Buffer.from(page('B', 'y'.repeat(2000))) })
  t.equal(br.kind === 'themed' && br.headers['content-encoding'], 'br')
  if (br.kind === 'themed') t.match(brotliDecompressSync(br.body).toString(), /<title>B<\/title>/)
  const broken = await engine.apply({ url: 'http://site.test/', headers: { 'content-type': 'text/html', 'content-encoding': 'gzip' }, requestHeaders: {}, body: Buffer.from('not gzip') })
  t.equal(broken.kind, 'notheme', 'an undecodable body is passed through')
  const empty = await engine.apply({ url: 'http://site.test/', headers: { 'content-type': 'text/html' }, requestHeaders: {}, body: Buffer.alloc(0) })
  t.equal(empty.kind, 'notheme')
})

t.test('pass-through predicate', async t => {
  const engine = new ThemeEngine({ rulesFile: join(demoDir, 'rules.xml'), loader: createDefaultLoader() })
  t.teardown(() => engine.close())
  const req = { method: 'GET', url: '/x', headers: {} }
  const res = { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' } }
  t.ok(engine.shouldTheme(req, res))
  t.ok(engine.shouldTheme(req, { status: 404, headers: res.headers }), 'error pages are themed')
  t.ok(engine.shouldTheme(req, { status: 200, headers: { 'content-type': 'application/xhtml+xml' } }))
  for (const status of [301, 302, 304, 204, 401]) t.notOk(engine.shouldTheme(req, { status, headers: res.headers }), `status ${status}`)
  t.notOk(engine.shouldTheme(req, { status: 200, headers: { 'content-type': 'application/json' } }), 'non-HTML')
  t.notOk(engine.shouldTheme(req, { status: 200, headers: {} }), 'no content type')
  t.notOk(engine.shouldTheme(req, { status: 200, headers: { ...res.headers, 'content-length': '0' } }), 'empty')
  t.notOk(engine.shouldTheme({ ...req, method: 'HEAD' }, res), 'HEAD')
  t.notOk(engine.shouldTheme({ ...req, headers: { 'x-requested-with': 'XMLHttpRequest' } }, res), 'XHR')
  t.notOk(engine.shouldTheme({ ...req, url: '/x?ajax_load=1' }, res), 'ajax_load')
  t.ok(engine.shouldTheme({ ...req, url: '/x?ajax_load=' }, res), 'empty ajax_load is false, as in Plone')
  t.notOk(engine.shouldTheme(req, { status: 200, headers: { ...res.headers, 'x-livery-theme': 'off' } }), 'X-Livery-Theme: off')
  t.notOk(engine.shouldTheme(req, { status: 200, headers: { ...res.headers, 'content-encoding': 'compress' } }), 'unknown encoding')
})

t.test('notheme and unavailable themes', async t => {
  const srv = await themeServer(t)
  const engine = new ThemeEngine({ rulesFile: join(demoDir, 'rules.xml'), themeBase: srv.base, loader: createDefaultLoader(), retryInterval: 0 })
  t.teardown(() => engine.close())
  await engine.load()
  const raw = await engine.apply({ url: 'http://site.test/', headers: { 'content-type': 'text/html' }, requestHeaders: {}, body: Buffer.from('<body class="livery-raw">x</body>') })
  t.equal(raw.kind, 'notheme')
  const down = new ThemeEngine({ rulesFile: join(demoDir, 'rules.xml'), themeBase: 'http://127.0.0.1:9/', loader: createDefaultLoader({ timeout: 2000 }), retryInterval: 60_000 })
  t.teardown(() => down.close())
  await down.load()
  const r = await down.apply({ url: 'http://site.test/', headers: { 'content-type': 'text/html' }, requestHeaders: {}, body: Buffer.from(page('x')) })
  t.equal(r.kind, 'unavailable')
  t.match(r.kind === 'unavailable' ? r.reason : '', /127\.0\.0\.1:9/)
})

t.test('load() recompiles only when a theme changed', async t => {
  const srv = await themeServer(t)
  const engine = new ThemeEngine({ rulesFile: join(demoDir, 'rules.xml'), themeBase: srv.base, loader: createDefaultLoader() })
  t.teardown(() => engine.close())
  await engine.load()
  const v1 = engine.version
  const c1 = engine.compiled
  await engine.load()
  t.equal(engine.version, v1)
  t.equal(engine.compiled, c1, 'same compiled template object')
  srv.setTheme('<html><head></head><body><article id="site-content"></article><p>new theme</p></body></html>')
  await engine.load()
  t.not(engine.version, v1)
  const r = await engine.apply({ url: 'http://site.test/', headers: { 'content-type': 'text/html' }, requestHeaders: {}, body: Buffer.from(page('x')) })
  t.match(r.kind === 'themed' ? r.body.toString() : '', /new theme/)
  // The compiled template is plain data: it survives structured cloning and still transforms.
  const clone = structuredClone(engine.compiled)
  const out = transformCompiled(clone!, page('cloned'), { path: '/' })
  t.match(out.kind === 'html' ? out.html : '', /<h1 class="documentFirstHeading">cloned<\/h1>/)
})

t.test('bad rules reject load with a located error; closed engines refuse work', async t => {
  const dir = t.testdir({ 'rules.xml': '<rules xmlns="http://namespaces.plone.org/diazo">\n<replace css:theme="#x"/>\n</rules>' })
  const engine = new ThemeEngine({ rulesFile: join(dir, 'rules.xml'), loader: createDefaultLoader() })
  await t.rejects(engine.load(), { code: 'LIVERY_ERR_RULES', message: /rules\.xml:2: .*undeclared namespace prefix "css"/ })
  await engine.close()
  await engine.close()
  const err = await engine.load().catch((e: unknown) => e)
  t.ok(hasCode(err, 'LIVERY_ERR_CLOSED'))
})
