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
