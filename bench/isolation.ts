/**
 * bench/isolation: does one bad site slow down another? One gateway, three
 * sites: `fast` (cached 60 KB pages), `slow` (its upstream answers after 5 s)
 * and `themed` (themed; its theme server accepts connections and never
 * answers). The fast site is measured with 50 connections alone, then while
 * 50 connections wait on the slow site, then while 50 connections load the
 * themed site (the shared bench/servers/theme.ts, switched to hang with
 * GET /__hang); each disturbance runs as a second autocannon instance
 * concurrently. Target: fast-site p99 ≤ 1.5 × alone, 0 errors.
 * Run: npm run bench -- isolation   (or: npm exec -- node bench/isolation.ts [--duration S])
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { load, loadInChild, pinSelf, printTable, startChild, writeResults, type Child, type Figures } from './harness.ts'

const { values } = parseArgs({ options: { duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' } } })
const duration = Number(values.duration)
const connections = Number(values.connections)
pinSelf()

const dir = mkdtempSync(join(tmpdir(), 'livery-bench-isolation-'))
const children: Child[] = []
const start = async (script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Child> => {
  const child = await startChild(script, args, env)
  children.push(child)
  return child
}

const rows: Figures[] = []
const disturbances: Figures[] = []
try {
  const cachedOrigin = await start('bench/servers/origin.ts', ['--cache-control', 'public, max-age=3600'])
  const slowOrigin = await start('bench/servers/origin.ts', ['--delay', '5000'])
  // The themed site's CMS sends short-lived cacheable pages, as CMSs do.
  const plainOrigin = await start('bench/servers/origin.ts', ['--cache-control', 'public, max-age=2'])
  // The shared theme server (bench/servers/theme.ts) hangs from /__hang on: it accepts requests and never answers.
  const stuckTheme = await start('bench/servers/theme.ts')
  const rules = join(dir, 'rules.xml')
  writeFileSync(rules, `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="${stuckTheme.url}/theme.html"/>
  <replace css:theme="title" css:content="title"/>
  <replace css:theme-children="#content" css:content-children="#content"/>
</rules>
`)
  const gateway = await start('bench/servers/gateway.ts', [], {
    LIVERY_BENCH_CONFIG: JSON.stringify({
      cache: { directory: join(dir, 'cache'), disk: { maxSize: 0 } },
      // Short theme freshness so the copy is stale (and refreshes hang) during the run.
      fetch: { ttl: '1s', minTtl: '500ms', wait: '200ms' },
      sites: [
        { name: 'fast', upstream: cachedOrigin.url, pathPrefix: '/' },
        { name: 'slow', upstream: slowOrigin.url, pathPrefix: '/slow' },
        { name: 'themed', upstream: plainOrigin.url, pathPrefix: '/themed', theme: { rules } },
      ],
    }),
  })
  const fastUrls = Array.from({ length: 10 }, (_, i) => `${gateway.url}/page/${i}`)
  // Distinct paths so the disturbing requests are not coalesced into a few upstream calls.
  const slowUrls = Array.from({ length: connections }, (_, i) => `${gateway.url}/slow/page/${i}`)
  const themedUrls = Array.from({ length: connections }, (_, i) => `${gateway.url}/themed/page/${i}`)

  await load('warm-up', { url: fastUrls, duration: 2, connections })
  rows.push(await load('fast alone', { url: fastUrls, duration, connections }))

  const withDisturbance = async (name: string, urls: string[]): Promise<void> => {
    // The disturbance runs a second longer on each side so it covers the whole measurement.
    // In its own process: its responses must not delay this process's measurement of the fast site.
    const disturbance = loadInChild(`${name} (disturbing site)`, { url: urls, duration: duration + 2, connections })
    await new Promise<void>(resolve => { setTimeout(resolve, 1000) })
    rows.push(await load(`fast while ${name}`, { url: fastUrls, duration, connections }))
    disturbances.push(await disturbance)
  }
  await withDisturbance('slow upstream (5 s)', slowUrls)
  // The theme server served the theme once (the copy every instance has), then hangs.
  await load('prime the theme', { url: themedUrls, duration: 2, connections: 4 })
  // Control: the same second load with a healthy theme server. Two sites' hits
  // share the gateway's one core, so the fast site slows down whatever the
  // theme server does; the hang must add nothing on top of this.
  await withDisturbance('themed site busy, theme server healthy (control)', themedUrls)
  const hang = await fetch(`${stuckTheme.url}/__hang`)
  if (!hang.ok) throw new Error(`the theme server refused /__hang: ${hang.status}`)
  await new Promise<void>(resolve => { setTimeout(resolve, 1500) })
  await withDisturbance('theme server hangs (stale copy)', themedUrls)
} finally {
  for (const child of children.reverse()) await child.stop()
  rmSync(dir, { recursive: true, force: true })
}

printTable(`bench/isolation: fast site, cached 60 KB pages, ${connections} connections, ${duration}s; servers on core 0, autocannon on core 1`, rows)
printTable('the disturbing load on the other site (its own figures)', disturbances)
const alone = rows[0]
const control = rows.find(r => r.name.includes('(control)'))
const hung = rows.find(r => r.name.includes('theme server hangs'))
if (control !== undefined && hung !== undefined) {
  console.log(`theme server hang vs the same load with a healthy theme server: fast-site p99 ${hung.p99} ms vs ${control.p99} ms (${(hung.p99 / Math.max(control.p99, 1)).toFixed(2)}×)`)
}
const verdicts = rows.slice(1).map(r => ({
  scenario: r.name,
  p99Ratio: Math.round((r.p99 / Math.max(alone.p99, 1)) * 100) / 100,
  reqPerSecRatio: Math.round((r.reqPerSec / alone.reqPerSec) * 100) / 100,
  errors: r.errors + r.non2xx,
  pass: r.p99 <= 1.5 * Math.max(alone.p99, 1) && r.errors + r.non2xx === 0,
}))
console.table(verdicts)
console.log('target: fast-site p99 ≤ 1.5 × alone and 0 errors (errors include non-2xx answers)')
console.log(`results: ${writeResults('isolation', { duration, connections, rows, disturbances, verdicts })}`)
