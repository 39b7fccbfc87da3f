// Issue 4: a rule `href` subrequest that fails (500, refused, hung) leaves its
// slot empty and logs, and the page is still served themed, never a 5xx.
import t from 'tap'
import { collect, hang, startServer } from '../fetcher/helpers.ts'
import { startContent, startGateway, startThemeServer, tempDir, themeOf, themedConfig, writeRules } from './fixture.ts'

t.test('failing href subrequests leave their slots empty, log, and never turn the page into a 5xx', async t => {
  const theme = await startThemeServer(t)
  const content = await startContent(t)
  const hrefs = await startServer(t, (req, res) => {
    if (req.url === '/ok.html') res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body><div id="news">HREF-OK</div></body></html>')
    else res.writeHead(500, { 'content-type': 'text/plain' }).end('broken')
  })
  const hung = await startServer(t, hang)
  const gone = await startServer(t, hang)
  await gone.close() // nothing listens there any more: connection refused
  const broken = hrefs.url('/broken.html')
  const refused = gone.url('/gone.html')
  const stuck = hung.url('/stuck.html')
  const dir = tempDir(t)
  const rules = writeRules(dir, `
  <replace css:theme-children="#side" css:content-children="#news" href="${broken}"/>
  <after css:theme-children="#side" css:content="#news" href="${refused}"/>
  <before css:theme-children="#side" css:content="#news" href="${stuck}"/>
  <after css:theme="#banner" css:content="#news" href="${hrefs.url('/ok.html')}"/>`)
  const config = themedConfig(dir, [{ name: 'hrefs', upstream: content.url, rules, base: `${theme.origin}/` }], {
    missWait: '1s',
    // The hung href's fetch outlives the test, so a page that waited for it could not arrive (issue 10).
    timeouts: { connect: '1s', firstByte: '60s', betweenBytes: '60s', total: '60s' },
  })
  const ended = collect(t, 'livery:fetch:job_end') as Array<{ url: string }>
  const gw = await startGateway(t, config)

  for (const path of ['/one', '/two']) {
    const r = await gw.get(path)
    t.equal(r.status, 200, `${path}: 200, not a 5xx`)
    t.equal(themeOf(r.body), 'v1', `${path}: themed`)
    t.equal(r.headers['x-livery-theme'], undefined, `${path}: not marked unavailable`)
    t.match(r.body, '<aside id="side"></aside>', `${path}: the failing hrefs' slot is empty`)
    t.match(r.body, '</header><div id="news">HREF-OK</div>', `${path}: the working href filled its slot`)
    t.match(r.body, `PAGE ${path}`, `${path}: the page's own content is there`)
    // Was "answered within missWait + 500 ms": the same fact as an ordering.
    t.notOk(ended.some(m => m.url === stuck), `${path}: answered (in ${r.ms.toFixed(0)} ms) while the hung href was still being fetched`)
  }
  for (const href of [broken, refused, stuck]) {
    const line = await gw.logs.waitFor({ href, msg: 'href content is unavailable' })
    t.ok(typeof line.err === 'string' && line.err !== '', `logged ${href}: ${String(line.err)}`)
  }
  t.equal(hung.requests.length, 1, 'the second page joined the hung href job (already past missWait) instead of waiting again')
})
