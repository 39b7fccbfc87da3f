/**
 * bench/transform-abuse (issue 13): two clients hammer a page whose
 * transform always runs past its budget; does another site's cache-hit rate
 * stay within 20 % of its rate alone? Both rounds run with
 * theme.rememberTimeout at its default (30 s) and at 0 (every request
 * transforms again and terminates a thread: the behaviour before issue 13).
 * The gateway runs in this process; each load is autocannon in a child.
 * Run: npm run bench -- transform-abuse [--duration S]
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { parseConfig } from '../src/config/load.ts'
import { Gateway } from '../src/server/gateway.ts'
import { createLogger } from '../src/log.ts'
import { loadInChild, printTable, writeResults, type Figures } from './harness.ts'

const { values } = parseArgs({ options: { duration: { type: 'string', default: '8' } } })
const duration = Number(values.duration)

const huge = `<!DOCTYPE html><html><head><title>huge</title></head><body>${Array.from({ length: 20_000 }, (_, i) => `<p>p${i}</p>`).join('')}</body></html>`
const small = '<!DOCTYPE html><html><head><title>small</title></head><body><p>a cached page</p></body></html>'
const origin = createServer((req, res) => {
  const costly = req.url?.startsWith('/costly/') === true
  // Both cacheable, as CMS pages are: the costly one's themed output can never be had, only its unthemed copy.
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'public, max-age=3600' })
  res.end(costly ? huge : small)
})
origin.listen(0, '127.0.0.1')
await once(origin, 'listening')
const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`

const dir = mkdtempSync(join(tmpdir(), 'livery-bench-abuse-'))
writeFileSync(join(dir, 'theme.html'), '<!DOCTYPE html><html><head><title>theme</title></head><body><div id="main">placeholder</div></body></html>')
writeFileSync(join(dir, 'rules.xml'), `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html"/>
  <replace css:theme="title" css:content="title"/>
  <replace css:theme-children="#main" content="//p[count(preceding-sibling::p) = count(following-sibling::p)]"/>
</rules>`)

const rows: Figures[] = []
const summary: Record<string, unknown>[] = []
try {
  for (const remember of ['30s', '0s']) {
    const config = parseConfig({
      listen: { host: '127.0.0.1', port: 0 },
      log: { level: 'error', access: false },
      threads: 2,
      cache: { directory: join(dir, `cache-${remember}`) },
      sites: [
        { name: 'costly', hosts: ['*'], pathPrefix: '/costly/', upstream: originUrl, theme: { rules: join(dir, 'rules.xml'), timeout: '300ms', rememberTimeout: remember } },
        { name: 'cheap', hosts: ['*'], pathPrefix: '/cheap/', upstream: originUrl, theme: { rules: join(dir, 'rules.xml') } },
      ],
    }, {}, dir)
    const gateway = new Gateway(config, { logger: createLogger({ level: 'error' }) })
    const base = `http://127.0.0.1:${(await gateway.listen(0, '127.0.0.1')).port}`
    await fetch(`${base}/cheap/page`).then(r => r.text())
    const alone = await loadInChild(`cheap alone (rememberTimeout ${remember})`, { url: [`${base}/cheap/page`], connections: 20, duration })
    const [withAbuse, abuse] = await Promise.all([
      loadInChild(`cheap, 2 clients on the costly page (rememberTimeout ${remember})`, { url: [`${base}/cheap/page`], connections: 20, duration }),
      loadInChild(`the 2 costly clients (rememberTimeout ${remember})`, { url: [`${base}/costly/huge`], connections: 2, duration }),
    ])
    rows.push(alone, withAbuse, abuse)
    const timeouts = gateway.transformPool?.stats().timeouts ?? 0
    summary.push({ rememberTimeout: remember, 'cheap alone req/s': alone.reqPerSec, 'cheap under abuse req/s': withAbuse.reqPerSec, ratio: Math.round(withAbuse.reqPerSec / alone.reqPerSec * 100) / 100, 'threads terminated': timeouts })
    // destroy, not close: a costly transform may still hold a thread.
    await gateway.destroy()
  }
  printTable('bench/transform-abuse', rows)
  console.table(summary)
  console.log('target: ratio ≥ 0.8 with the default rememberTimeout')
  console.log(`results: ${writeResults('transform-abuse', { duration, rows, summary })}`)
} finally {
  origin.close()
  rmSync(dir, { recursive: true, force: true })
}
