/**
 * bench/slow-theme (issue 4): themed pages under load, once with a healthy
 * theme server and once with a hung one (it accepts and never answers) while
 * the gateway holds a stale copy of the theme. The fetch pool must keep the
 * hung server off the request path: target p99(hung) <= 1.2 x p99(healthy), 0 errors.
 *
 * The content origin sends `cache-control: no-store`, so every request is
 * fetched and themed afresh. fetch.ttl is 1 s, so the theme copy is stale for
 * the whole hung run; fetch.wait is the default 200 ms.
 * Run: npm exec -- node bench/slow-theme.ts [--duration S] [--connections N]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { request } from 'undici'
import { load, pinSelf, printTable, startChild, writeResults, type Child, type Figures } from './harness.ts'

const { values } = parseArgs({ options: { duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' } } })
const duration = Number(values.duration)
const connections = Number(values.connections)
pinSelf()

const rules = `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html"/>
  <replace css:theme="title" css:content="title"/>
  <replace css:theme="#content" css:content="#content"/>
</rules>
`
const fetchConfig = { ttl: '1s', minTtl: '500ms', wait: '200ms', missWait: '3s' }

async function get (url: string): Promise<{ status: number, body: string }> {
  const r = await request(url)
  return { status: r.statusCode, body: await r.body.text() }
}

async function themeStats (theme: Child): Promise<Record<string, number>> {
  return JSON.parse((await get(`${theme.url}/__stats`)).body) as Record<string, number>
}

const dir = mkdtempSync(join(tmpdir(), 'livery-bench-slow-theme-'))
const rulesFile = join(dir, 'rules.xml')
writeFileSync(rulesFile, rules)
const rows: Figures[] = []
const children: Child[] = []
let themeSeen: Record<string, Record<string, number>> = {}
try {
  const origin = await startChild('bench/servers/origin.ts', ['--cache-control', 'no-store'])
  children.push(origin)
  const theme = await startChild('bench/servers/theme.ts')
  children.push(theme)
  const gateway = await startChild('bench/servers/gateway.ts', [], {
    LIVERY_BENCH_CONFIG: JSON.stringify({
      cache: { directory: join(dir, 'cache') },
      fetch: fetchConfig,
      sites: [{ name: 'bench', upstream: origin.url, theme: { rules: rulesFile, base: `${theme.url}/` } }],
    }),
  })
  children.push(gateway)
  const sample = await get(`${gateway.url}/page`)
  if (sample.status !== 200 || !sample.body.includes('BENCH-THEME')) throw new Error(`the gateway does not theme: ${sample.status} ${sample.body.slice(0, 200)}`)

  await load('warm-up', { url: `${gateway.url}/page`, duration: 2, connections })
  rows.push(await load('healthy theme server', { url: `${gateway.url}/page`, duration, connections }))
  const healthyStats = await themeStats(theme)

  await get(`${theme.url}/__hang`)
  // Let the last copy the healthy run fetched go stale (ttl 1 s) before loading.
  await new Promise(resolve => setTimeout(resolve, 1_500))
  rows.push(await load('hung theme server (stale copy)', { url: `${gateway.url}/page`, duration, connections }))
  const hungStats = await themeStats(theme)
  const after = await get(`${gateway.url}/page`)
  if (!after.body.includes('BENCH-THEME')) throw new Error('pages were not themed during the hung run')
  themeSeen = { afterHealthy: healthyStats, afterHung: hungStats }
} finally {
  for (const c of children.reverse()) await c.stop()
  rmSync(dir, { recursive: true, force: true })
}

printTable(`bench/slow-theme: themed 60 KB pages (no-store), ${connections} connections, ${duration}s; servers on core 0, autocannon on core 1`, rows)
const [healthy, hung] = rows
const ratio = hung.p99 / healthy.p99
const errors = hung.errors + hung.non2xx + healthy.errors + healthy.non2xx
console.log(`theme server: ${JSON.stringify(themeSeen)}`)
console.log(`p99 hung / healthy = ${ratio.toFixed(2)} (target <= 1.2); errors + non-2xx = ${errors} (target 0): ${ratio <= 1.2 && errors === 0 ? 'PASS' : 'FAIL'}`)
console.log(`results: ${writeResults('slow-theme', { fetch: fetchConfig, connections, duration, rows, ratio, errors, themeServer: themeSeen })}`)
