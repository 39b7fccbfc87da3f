import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { startGateway, startUpstream } from '../helpers/servers.ts'

// Regression: a HEAD miss fills the cache with a GET. The fill must be themed
// as the GET it is, or the unthemed page lands under the themed key and every
// later GET is served unthemed from the cache.
t.test('a HEAD miss on a themed site stores the themed page', async t => {
  const themeServer = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body><div id="main">theme</div><p id="themed">yes</p></body></html>')
  })
  const content = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'max-age=60' }).end('<html><body><div id="content">hello</div></body></html>')
  })
  const dir = t.testdir({})
  const rules = join(dir, 'rules.xml')
  writeFileSync(rules, `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html" /><replace css:theme="#main" css:content="#content" /></rules>`)
  const { url } = await startGateway(t, { upstream: content.url, site: { theme: { rules, base: `${themeServer.url}/` } } })

  const head = await request(`${url}/page`, { method: 'HEAD' })
  t.equal(head.statusCode, 200)
  await head.body.dump()
  const get = await request(`${url}/page`)
  t.equal(get.headers['x-cache'], 'HIT', 'the HEAD filled the cache')
  const body = await get.body.text()
  t.match(body, /id="themed"/, 'and what it stored is themed')
  t.match(body, /hello/)
})
