/**
 * Theme transform benchmark: a generated 60 KB CMS page, a 20 KB theme and
 * ten typical rules. Measures transformCompiled (parse content + fill slots +
 * serialise) on one core. Run: npm exec -- node bench/theme.ts
 *
 * The figures are wall-clock times, so they carry the machine's load average
 * (recorded in the result): on a shared machine, run it two or three times.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { compile } from '../src/theme/compile.ts'
import { parseRules } from '../src/theme/rules.ts'
import { transformCompiled } from '../src/theme/transform.ts'

function cmsPage (targetBytes: number): string {
  const nav = Array.from({ length: 12 }, (_, i) => `<li id="portaltab-${i}" class="plain"><a href="/section-${i}" title="Section ${i}">Section ${i}</a></li>`).join('')
  let body = ''
  let i = 0
  while (body.length < targetBytes - 4000) {
    body += `<div class="tileItem visualIEFloatFix"><h2 class="tileHeadline"><a href="/news/item-${i}" class="summary url">News item number ${i} &amp; friends</a></h2>` +
      `<p class="tileBody"><span class="description">Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Caf\u00e9 \u2014 ${i}.</span></p>` +
      `<p class="tileFooter"><a href="/news/item-${i}"><span class="hiddenStructure">Read more</span>Read More…</a></p><div class="visualClear"><!-- --></div></div>\n`
    i++
  }
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>News — Example CMS</title>
<link rel="stylesheet" href="/cms.css"><link rel="stylesheet" href="/print.css" media="print"><meta name="description" content="All the news">
<script src="/jquery.js"></script><script>var portal_url = 'http://example.org';</script></head>
<body class="template-folder_summary_view portaltype-folder section-news site-Plone userrole-anonymous">
<div id="visual-portal-wrapper"><div id="portal-top"><div id="portal-header"><a id="portal-logo" href="/"><img src="/logo.png" alt="Example"></a>
<div id="portal-searchbox"><form action="/search"><input name="SearchableText" type="text"><input type="submit" value="Search"></form></div></div>
<nav id="portal-globalnav"><ul>${nav}</ul></nav></div>
<div id="portal-breadcrumbs"><a href="/">Home</a> › <span>News</span></div>
<div id="portal-columns"><div id="portal-column-content"><div id="viewlet-above-content"></div>
<main id="content"><h1 class="documentFirstHeading">News</h1><div class="documentDescription">Site news</div>
<div id="content-core">${body}</div></main></div>
<div id="portal-column-two"><div class="portlet"><h3>Events</h3><p>None</p></div></div></div>
<footer id="portal-footer"><p>© Example. Powered by a CMS.</p></footer><div id="portal-colophon">Colophon</div></div></body></html>`
}

function themePage (targetBytes: number): string {
  let filler = ''
  let i = 0
  while (filler.length < targetBytes - 2500) {
    filler += `<section class="promo promo-${i}"><h3>Promo ${i}</h3><p>Static theme copy that stays as it is, with an <a href="promo/${i}.html">inner link</a> and <img src="img/p${i}.png" alt=""></p></section>\n`
    i++
  }
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Theme</title>
<link rel="stylesheet" href="css/main.css"><link rel="icon" href="favicon.ico"><script src="js/theme.js"></script>
<style>.hero { background: url(img/hero.jpg) }</style></head>
<body class="theme"><header class="site-header"><a class="brand" href="/"><img src="img/logo.svg" alt="Brand"></a>
<nav id="site-nav"><ul><li><a href="#">Placeholder</a></li></ul></nav><div id="crumbs"></div></header>
<div class="hero"><h2>Hero</h2></div>
<main id="site-content"><p>Placeholder content</p></main>
<aside id="sidebar">${filler}</aside>
<footer id="site-footer"><p class="credits">Theme credits</p></footer></body></html>`
}

const rules = `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html"/>
  <notheme css:if-content="body.livery-raw"/>
  <replace css:theme="title" css:content="title"/>
  <drop css:content="link[rel=stylesheet]"/>
  <after css:theme-children="head" css:content="head meta[name=description], head script"/>
  <replace css:theme-children="#site-nav" css:content-children="#portal-globalnav"/>
  <replace css:theme-children="#crumbs" css:content-children="#portal-breadcrumbs"/>
  <replace css:theme="#site-content" css:content="#content" if-content=""/>
  <drop css:content=".hiddenStructure"/>
  <before css:theme-children="#site-footer" content="//footer[@id='portal-footer']/p"/>
  <merge attributes="class" css:theme="body" css:content="body"/>
</rules>`

const content = cmsPage(60 * 1024)
if (process.env.DUMP !== undefined) writeFileSync(process.env.DUMP, content)
const theme = themePage(20 * 1024)
const files: Record<string, string> = { 'file:///bench/rules.xml': rules, 'file:///bench/theme.html': theme }
const rs = await parseRules('file:///bench/rules.xml', async u => files[u] ?? '', {})
const compiled = compile(rs, [{ html: theme }], { absolutePrefix: '/++theme++bench', version: 'bench' })

const ctx = { path: '/news' }
const first = transformCompiled(compiled, content, ctx)
if (first.kind !== 'html') throw new Error(`bench page was not themed: ${first.kind}`)

const warmup = 500
const iterations = Number(process.env.ITERATIONS ?? 3000)
for (let i = 0; i < warmup; i++) transformCompiled(compiled, content, ctx)
const loadBefore = loadavg()[0]
const times: number[] = []
for (let i = 0; i < iterations; i++) {
  const t0 = performance.now()
  transformCompiled(compiled, content, ctx)
  times.push(performance.now() - t0)
}
times.sort((a, b) => a - b)
const q = (p: number): number => times[Math.min(times.length - 1, Math.floor(p * times.length))]
const result = {
  node: process.version,
  contentBytes: Buffer.byteLength(content),
  themeBytes: Buffer.byteLength(theme),
  outputBytes: Buffer.byteLength(first.html),
  rules: rs.rules.length,
  iterations,
  medianMs: q(0.5),
  p90Ms: q(0.9),
  p99Ms: q(0.99),
  maxMs: times[times.length - 1],
  targetMedianMs: 1.0,
  /** 1-minute load average before and after the timed loop. */
  load: [loadBefore, loadavg()[0]]
}
console.table({ transform: { 'content KB': (result.contentBytes / 1024).toFixed(1), 'theme KB': (result.themeBytes / 1024).toFixed(1), rules: result.rules, iterations, 'median ms': result.medianMs.toFixed(3), 'p99 ms': result.p99Ms.toFixed(3), 'target ms': '≤ 1.000', load: result.load.map(l => l.toFixed(2)).join(' → ') } })
const dir = join(import.meta.dirname, 'results')
mkdirSync(dir, { recursive: true })
writeFileSync(join(dir, 'theme.json'), JSON.stringify(result, null, 2) + '\n')
console.log(`wrote ${join(dir, 'theme.json')}`)
