// Issue 16: the operator page under the admin prefix, rendered by a real
// browser (headless Chromium, no JavaScript on the page), with its purge form.
import t from 'tap'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { request } from 'undici'
import { startGateway, startUpstream } from '../helpers/servers.ts'

const token = 'operator-token'
const rules = `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html" /><replace css:theme="#main" css:content="#content" /></rules>`

/** The DOM Chromium builds for `url` (Debian's chromium; .ci/run installs it). */
function dumpDom (url: string, profile: string): Promise<string> {
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
    `--user-data-dir=${profile}`, '--dump-dom', url]
  return new Promise((resolve, reject) => {
    execFile('chromium', args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => {
      if (err !== null) reject(new Error(`chromium failed (is Debian's chromium package installed?): ${err.message}`))
      else resolve(stdout)
    })
  })
}

t.test('the page in a browser, and the purge form', async t => {
  const theme = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body><div id="main"></div></body></html>')
  })
  const content = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'max-age=60' }).end('<html><body><div id="content">hi</div></body></html>')
  })
  const dir = t.testdir({ 'rules.xml': rules, profile: {} })
  const f = await startGateway(t, {
    raw: {
      admin: { token },
      sites: [
        { name: 'www', hosts: ['www.test'], upstream: content.url, theme: { rules: join(dir, 'rules.xml'), base: `${theme.url}/` } },
        { name: 'down', hosts: ['down.test'], upstream: 'http://127.0.0.1:9' },
      ],
    },
  })
  const get = async (host: string, path: string): Promise<string> => {
    const res = await request(`${f.url}${path}`, { headers: { host }, dispatcher: f.agent })
    await res.body.dump()
    return `${res.statusCode} ${String(res.headers['x-cache'])}`
  }
  t.equal(await get('www.test', '/a'), '200 MISS')
  t.equal(await get('www.test', '/a'), '200 HIT')
  t.equal((await get('down.test', '/x')).slice(0, 3), '502', 'an upstream that refuses')
  await f.logs.waitFor({ type: 'access', path: '/x' })

  const dom = await dumpDom(`${f.url}/_livery/`, join(dir, 'profile'))
  t.match(dom, /<table id="sites">/, 'the sites table')
  const www = /<tr data-site="www">(.*?)<\/tr>/s.exec(dom)?.[1] ?? ''
  t.match(www, /<td class="num hit-ratio">50\.0 %<\/td>/, 'hit ratio of www: one hit in two')
  t.match(www, /2xx 2/, 'status mix')
  t.match(www, /available/, 'theme state')
  t.match(dom, /<tr data-site="down">.*5xx 1/s)
  t.match(dom, /<table id="themes">.*theme\.html.*available/s, 'theme versions and state')
  t.match(dom, /<table id="circuits">/, 'fetch-pool circuits')
  t.match(dom, /<table id="errors">.*LIVERY_ERR_UPSTREAM_CONNECT/s, 'the recent error')
  t.match(dom, /<form id="purge" method="post" action="\/_livery\/ops\/purge">/, 'the purge form')
  t.notMatch(dom, /<script/i, 'no JavaScript')

  const form = (fields: Record<string, string>): Promise<{ status: number, location: unknown }> =>
    request(`${f.url}/_livery/ops/purge`, {
      method: 'POST', dispatcher: f.agent, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString(),
    }).then(async r => { await r.body.dump(); return { status: r.statusCode, location: r.headers.location } })
  t.equal((await form({ kind: 'url', value: 'http://www.test/a', token: 'wrong' })).status, 401, 'the form needs the token')
  t.equal(await get('www.test', '/a'), '200 HIT')
  t.same(await form({ kind: 'url', value: 'http://www.test/a', token }), { status: 303, location: '/_livery/?purged=1' }, 'purged, then back to the page')
  t.equal(await get('www.test', '/a'), '200 MISS')
  const after = await dumpDom(`${f.url}/_livery/?purged=1`, join(dir, 'profile'))
  t.match(after, /Purged 1 entry\./)

  const through = await request(`${f.url}/_livery/`, { headers: { 'x-forwarded-for': '203.0.113.1' }, dispatcher: f.agent })
  await through.body.dump()
  t.equal(through.statusCode, 403, 'private: not through a load balancer')
})
