import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { startGateway, startUpstream } from '../helpers/servers.ts'

const rules = `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html" />
  <replace css:theme="#main" css:content="#content" />
</rules>`
const themePage = '<html><head><link rel="stylesheet" href="css/site.css"></head><body><div id="main">theme</div><img src="logo.svg"></body></html>'

t.test('theme assets are served by the gateway from the fetch pool, and survive the theme server going away', async t => {
  let themeUp = true
  const themeServer = await startUpstream(t, (req, res) => {
    if (!themeUp) { res.socket?.destroy(); return }
    if (req.url === '/theme/theme.html') res.writeHead(200, { 'content-type': 'text/html' }).end(themePage)
    else if (req.url === '/theme/css/site.css') res.writeHead(200, { 'content-type': 'text/css', etag: '"v1"' }).end('body { color: teal }')
    else if (req.url === '/secret') res.writeHead(200).end('outside the theme folder')
    else res.writeHead(404).end()
  })
  const content = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' }).end('<html><body><div id="content">hello</div></body></html>')
  })
  const dir = t.testdir({})
  const rulesFile = join(dir, 'rules.xml')
  writeFileSync(rulesFile, rules)
  const { url } = await startGateway(t, {
    upstream: content.url,
    site: { name: 'www', theme: { rules: rulesFile, base: `${themeServer.url}/theme/` } },
    raw: { fetch: { ttl: '60s', minTtl: '1s', wait: '100ms', missWait: '1s' } },
  })

  const page = await (await request(`${url}/`)).body.text()
  t.match(page, /href="\/_livery\/theme\/www\/css\/site\.css"/, 'theme-relative links point at the gateway')
  t.match(page, /src="\/_livery\/theme\/www\/logo\.svg"/)
  t.match(page, /hello/, 'the page is themed')

  const css = await request(`${url}/_livery/theme/www/css/site.css`)
  t.equal(css.statusCode, 200)
  t.equal(css.headers['content-type'], 'text/css')
  t.match(String(css.headers['cache-control']), /public, max-age=\d+/)
  t.equal(await css.body.text(), 'body { color: teal }')

  const again = await request(`${url}/_livery/theme/www/css/site.css`, { headers: { 'if-none-match': String(css.headers.etag) } })
  t.equal(again.statusCode, 304, 'conditional requests are answered')
  await again.body.dump()

  for (const bad of ['/_livery/theme/www/../../secret', '/_livery/theme/www/%2e%2e/%2e%2e/secret', '/_livery/theme/nosite/css/site.css']) {
    const r = await request(`${url}${bad}`)
    t.equal(r.statusCode, 404, `${bad} is refused`)
    t.notMatch(await r.body.text(), /outside the theme folder/)
  }
  const post = await request(`${url}/_livery/theme/www/css/site.css`, { method: 'POST', body: 'x' })
  t.equal(post.statusCode, 405)
  await post.body.dump()

  themeUp = false
  const cached = await request(`${url}/_livery/theme/www/css/site.css`)
  t.equal(cached.statusCode, 200, 'served from the fetch pool with the theme server gone')
  t.equal(await cached.body.text(), 'body { color: teal }')
})

const cssWithRefs = 'body { background: url("img/bg.png") } @import "fonts.css"; .x { background: url(data:image/png;base64,AA==) }'

t.test('only what the theme links to is the theme\'s; other paths go to a small store of their own that cannot evict the theme', async t => {
  let fetchedOther = 0
  const themeServer = await startUpstream(t, (req, res) => {
    if (req.url === '/theme/theme.html') res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'max-age=600' }).end(themePage)
    else if (req.url === '/theme/css/site.css') res.writeHead(200, { 'content-type': 'text/css' }).end(cssWithRefs)
    else if (req.url === '/theme/css/img/bg.png') res.writeHead(200, { 'content-type': 'image/png' }).end('png')
    else if (req.url?.startsWith('/theme/junk/') === true) { fetchedOther++; res.writeHead(200, { 'content-type': 'text/plain' }).end(req.url) } else res.writeHead(404).end()
  })
  const content = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' }).end('<html><body><div id="content">hello</div></body></html>')
  })
  const dir = t.testdir({ 'rules.xml': rules })
  const fx = await startGateway(t, {
    upstream: content.url,
    site: { name: 'www', theme: { rules: join(dir, 'rules.xml'), base: `${themeServer.url}/theme/` } },
  })
  const { gateway, url } = fx
  t.match(await (await request(`${url}/`)).body.text(), /hello/, 'the page is themed')
  const before = gateway.fetchPool.stats().entries
  t.ok(gateway.fetchPool.peek(`${themeServer.url}/theme/theme.html`) !== undefined, 'the theme page is in the fetch pool')

  for (const path of ['css/site.css', 'logo.svg', 'css/img/bg.png']) {
    const r = await request(`${url}/_livery/theme/www/${path}`)
    await r.body.dump()
  }
  const pools = gateway.assetPools
  t.ok(pools.theme.peek(`${themeServer.url}/theme/css/site.css`) !== undefined, 'a linked stylesheet is a theme asset')
  t.ok(pools.theme.peek(`${themeServer.url}/theme/css/img/bg.png`) !== undefined, 'so is an image the stylesheet links to')
  t.equal(pools.other.stats().entries, 0, 'nothing went to the other store yet')

  const distinct = 260
  for (let i = 0; i < distinct; i++) {
    const r = await request(`${url}/_livery/theme/www/junk/${i}.txt`)
    t.equal(r.statusCode, 200)
    await r.body.dump()
  }
  t.equal(fetchedOther, distinct, 'other paths are still served')
  t.ok(pools.other.stats().entries <= 200, `the other store is bounded (${pools.other.stats().entries} entries)`)
  t.equal(pools.theme.peek(`${themeServer.url}/theme/junk/1.txt`), undefined, 'other paths never enter the theme asset store')
  t.equal(gateway.fetchPool.stats().entries, before, 'asset traffic adds nothing to the store of theme pages and rules')
  t.ok(gateway.fetchPool.peek(`${themeServer.url}/theme/theme.html`) !== undefined, 'the theme page is still there')
  t.ok(pools.theme.peek(`${themeServer.url}/theme/css/site.css`) !== undefined, 'and so is its stylesheet')
  const status = await (await request(`${url}/_livery/status`)).body.json() as { themeAssets: { other: { entries: number } } }
  t.equal(status.themeAssets.other.entries, pools.other.stats().entries, 'status accounts for the stores separately')
})

t.test('readiness says when a site has no usable theme, and recovers once the theme server answers', async t => {
  let themeUp = false
  const themeServer = await startUpstream(t, (req, res) => {
    if (!themeUp) { res.writeHead(503).end(); return }
    if (req.url === '/theme/theme.html') res.writeHead(200, { 'content-type': 'text/html' }).end(themePage)
    else res.writeHead(404).end()
  })
  const dir = t.testdir({ 'rules.xml': rules })
  const { url } = await startGateway(t, {
    site: { name: 'www', theme: { rules: join(dir, 'rules.xml'), base: `${themeServer.url}/theme/` } },
    raw: { fetch: { ttl: '60s', minTtl: '100ms', wait: '100ms', missWait: '1s' } },
  })
  const down = await request(`${url}/_livery/readyz`)
  t.equal(down.statusCode, 503, 'not ready: pages would go out unthemed')
  t.match(await down.body.text(), /no usable theme for www/)
  const status = await (await request(`${url}/_livery/status`)).body.json() as { sites: Array<{ theme: { usable: boolean } }> }
  t.equal(status.sites[0].theme.usable, false, 'status says so too')

  themeUp = true
  // The probes themselves start the retries; each is bounded by fetch.minTtl.
  const started = performance.now()
  for (;;) {
    const r = await request(`${url}/_livery/readyz`)
    await r.body.dump()
    if (r.statusCode === 200) break
    if (performance.now() - started > 20_000) throw new Error('readyz never recovered')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  t.pass('ready once the theme loaded')
})
