// Issue 16: the access log carries what an operator greps for (query, client,
// User-Agent, Referer, upstream time, true byte counts for admin routes and
// theme assets), in JSON or in the combined format varnishncsa writes.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { request } from 'undici'
import { parseConfig } from '../../src/config/load.ts'
import { Gateway } from '../../src/server/gateway.ts'
import { clfTime } from '../../src/server/access-log.ts'
import { gatewayRaw, startGateway, startUpstream } from '../helpers/servers.ts'
import { LogCapture } from '../helpers/logs.ts'

const rules = `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html" /><replace css:theme="#main" css:content="#content" /></rules>`
const css = 'body { color: teal }\n'

t.test('JSON access lines', async t => {
  const theme = await startUpstream(t, (req, res) => {
    if (req.url === '/theme.html') res.writeHead(200, { 'content-type': 'text/html' }).end('<html><head><link rel="stylesheet" href="site.css"></head><body><div id="main"></div></body></html>')
    else res.writeHead(200, { 'content-type': 'text/css' }).end(css)
  })
  const content = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' }).end('<html><body><div id="content">hello</div></body></html>')
  })
  const dir = t.testdir({ 'rules.xml': rules })
  const { url, logs } = await startGateway(t, { upstream: content.url, site: { name: 'www', theme: { rules: join(dir, 'rules.xml'), base: `${theme.url}/` } } })

  const page = await request(`${url}/news?q=1&page=2`, { headers: { 'user-agent': 'curl/8.5', referer: 'http://example.org/' } })
  const body = await page.body.text()
  const line = await logs.access('/news')
  t.equal(line.query, 'q=1&page=2', 'the query string')
  t.equal(line.client, '127.0.0.1')
  t.equal(line.userAgent, 'curl/8.5')
  t.equal(line.referer, 'http://example.org/')
  t.equal(typeof line.upstreamTime, 'number', 'upstream time')
  t.equal(line.bytes, Buffer.byteLength(body))

  const asset = await request(`${url}/_livery/theme/www/site.css`)
  t.equal(await asset.body.text(), css)
  t.equal((await logs.access('/_livery/theme/www/site.css')).bytes, Buffer.byteLength(css), 'theme asset bytes')
  const health = await request(`${url}/_livery/healthz`)
  t.equal((await logs.access('/_livery/healthz')).bytes, Buffer.byteLength(await health.body.text()), 'admin route bytes')
  const head = await request(`${url}/_livery/healthz`, { method: 'HEAD' })
  await head.body.dump()
  await logs.waitFor({ type: 'access', path: '/_livery/healthz', method: 'HEAD' })
  t.equal(logs.find({ type: 'access', method: 'HEAD' })[0]?.bytes, 0, 'HEAD sends no body')
})

t.test('combined log format', async t => {
  const content = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end('hello\n')
  })
  const dir = t.testdir({})
  const config = parseConfig(gatewayRaw({ upstream: content.url, raw: { log: { format: 'combined' } } }, dir), {}, dir)
  const out = new PassThrough()
  let text = ''
  const lines: ((s: string) => void)[] = []
  out.setEncoding('utf8').on('data', (c: string) => { text += c; for (const l of lines.splice(0)) l(text) })
  const nextLine = (): Promise<string> => new Promise(resolve => { lines.push(resolve) })
  const logs = new LogCapture()
  const gateway = new Gateway(config, { logger: logs.logger, accessOut: out })
  t.teardown(() => gateway.destroy())
  const { port } = await gateway.listen(0, '127.0.0.1')

  const before = clfTime(new Date()).slice(0, 12) // the day: a line written now starts the same way
  const logged = nextLine()
  const res = await request(`http://127.0.0.1:${port}/a%20b?x="y"`, {
    headers: { 'user-agent': 'Mozilla/5.0 "quoted"', authorization: `Basic ${Buffer.from('editor:secret').toString('base64')}`, host: 'www.example.org' },
  })
  await res.body.text()
  const line = (await logged).trimEnd()
  t.match(line, /^127\.0\.0\.1 - editor \[\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET http:\/\/www\.example\.org\/a%20b\?x=%22y%22 HTTP\/1\.1" 200 6 "-" "Mozilla\/5\.0 \\"quoted\\""$/)
  t.ok(line.includes(before), 'the time is now, in UTC')
  t.same(logs.find({ type: 'access' }), [], 'no JSON access line beside it')
})
