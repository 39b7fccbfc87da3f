/**
 * parse.ts against parse5 (the WHATWG tree builder browsers implement) on a
 * generated corpus of real-world-style pages: CMS templates with the
 * mistakes real pages carry (unclosed paragraphs and list items, tables
 * without tbody, misnested formatting, fragments, a second body, markup after
 * </html>, forms in tables, ...). Prints how many trees agree, the kinds of
 * difference found (first difference of each page, classified), and the
 * crafted deep page's parse time.
 *
 * Run: npm run bench -- parser-compare [--pages N] [--show K]
 *
 * Dev-only: parse5 is a devDependency for this comparison and never loaded
 * by the gateway. Differences Livery keeps on purpose are libxml2's trees
 * (Diazo's parser), listed in docs/rules.md "Parser choice".
 */
import { parse } from 'parse5'
import type { DefaultTreeAdapterMap } from 'parse5'
import type { AnyNode } from 'domhandler'
import { parsePage } from '../src/theme/parse.ts'

type P5Node = DefaultTreeAdapterMap['node']

const args = process.argv.slice(2)
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`)
  return i === -1 ? dflt : Number(args[i + 1])
}
const pages = opt('pages', 2000)
const show = opt('show', 3)

/** Deterministic PRNG (mulberry32), so a difference can be regenerated from its page number. */
function rng (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

// --- the corpus ----------------------------------------------------------------------------------------------
const words = ['Home', 'News', 'About us', 'Contact', 'Caf\u00e9 & bar', 'Events', 'Read more', '\u00a9 2024', 'Search']
type Gen = (r: () => number) => string
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]
const word: Gen = r => pick(r, words).replace('&', '&amp;')
const repeat = (r: () => number, min: number, max: number, g: Gen): string => {
  let s = ''
  const n = min + Math.floor(r() * (max - min + 1))
  for (let i = 0; i < n; i++) s += g(r)
  return s
}

/** Fragments of page bodies, well-formed and as CMSs and editors get them wrong. */
const blocks: Gen[] = [
  r => `<p class="lead">${word(r)} <a href="/x">${word(r)}</a></p>`,
  r => `<p>${word(r)}<p>${word(r)}`,
  r => `<ul id="nav">${repeat(r, 1, 5, r => `<li><a href="/s">${word(r)}</a>`)}</ul>`,
  r => `<ul>${repeat(r, 1, 4, r => `<li><p>${word(r)}`)}</ul>`,
  r => `<ol>${repeat(r, 1, 3, r => `<li>${word(r)}<ul><li>${word(r)}</ul>`)}</ol>`,
  r => `<dl>${repeat(r, 1, 3, r => `<dt>${word(r)}<dd><p>${word(r)}`)}</dl>`,
  r => `<table class="listing"><tr><th>${word(r)}<th>${word(r)}${repeat(r, 1, 3, r => `<tr><td><p>${word(r)}<td>${word(r)}`)}</table>`,
  r => `<table><thead><tr><th>${word(r)}</th></tr></thead><tbody><tr><td>${word(r)}</td></tr></tbody></table>`,
  r => `<table><tr><td>${word(r)}</td></tr></table>`,
  r => `<b>${word(r)}<p>${word(r)}</b> ${word(r)}</p>`,
  r => `<p><strong>${word(r)}</p><p>${word(r)}</strong></p>`,
  r => `<a href="/x"><div class="card">${word(r)}</div></a>`,
  r => `<center>${word(r)}</center><p>${word(r)}<center>${word(r)}</center>`,
  r => `<p>${word(r)}<menu><li>${word(r)}</menu>`,
  r => `<div id="portlet"><h3>${word(r)}</h3><p>${word(r)}</div>`,
  r => `<form action="/search"><input name="q"><button>${word(r)}</button></form>`,
  r => `<table><form><tr><td><input name="a"></td></tr></form></table>`,
  r => `<p>${word(r)}</span></div></p>`,
  r => `<div><span>${word(r)}</div>`,
  r => `<h2>${word(r)}<h3>${word(r)}</h3>`,
  r => `<select><option>${word(r)}<option>${word(r)}</select>`,
  r => `<img src="/i.png" alt="${word(r)}"><br><hr>`,
  r => `<script>var x = "${word(r)}";</script>`,
  r => `<!-- ${word(r)} -->`,
  r => `<svg viewBox="0 0 1 1"><clipPath id="c"><path d="M0 0"/></clipPath></svg>`,
  r => `<p>${word(r)}<table><tr><td>${word(r)}</td></tr></table>`,
  r => `<i>${word(r)}<div>${word(r)}</i>${word(r)}</div>`,
  r => `<em><b>${word(r)}</em></b>`,
  r => `<p>${word(r)}<pre>${word(r)}</pre>`,
  r => `<li>${word(r)}<li>${word(r)}`,
  r => `<td>${word(r)}</td>`,
  r => `<table><tr><td>${word(r)}</td></tr><div class="oops">${word(r)}</div></table>`
]

const heads = [
  '<meta charset="utf-8"><title>Page</title><link rel="stylesheet" href="/s.css">',
  '<title>Page</title><script src="/j.js"></script><style>p { color: red }</style>',
  '<meta name="description" content="d"><title>T</title>'
]

/** Whole pages: full documents, fragments, and documents with body/html mistakes. */
const shapes: Array<(r: () => number, body: string) => string> = [
  (r, b) => `<!DOCTYPE html><html lang="en"><head>${pick(r, heads)}</head><body class="page">${b}</body></html>`,
  (r, b) => `<!DOCTYPE html>\n<html>\n<head>\n${pick(r, heads)}\n</head>\n<body>\n${b}\n</body>\n</html>\n`,
  (_r, b) => b,
  (r, b) => `<title>Not found</title>${b}`,
  (r, b) => `<html><head>${pick(r, heads)}</head><body>${b}</body></html><div id="late">${word(r)}</div>`,
  (r, b) => `<html><body class="a">${b}<body id="second" class="b"><p>${word(r)}</p></body></html>`,
  (r, b) => `<html><head>${pick(r, heads)}<div id="early">${word(r)}</div></head><body>${b}</body></html>`,
  (r, b) => `<html><head>${pick(r, heads)}</head>${b}</html>`
]

function page (r: () => number): string {
  return pick(r, shapes)(r, repeat(r, 1, 12, r => pick(r, blocks)(r)))
}

// --- canonical trees -----------------------------------------------------------------------------------------
/** What a comparison forgives: attribute-name case, parse5's implied <tbody>, and cells outside any table. */
interface Forgive { readonly attrCase: boolean, readonly tbody: boolean, readonly strayCells: boolean }
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')
const attrsOf = (pairs: Array<[string, string]>, f: Forgive): string =>
  pairs.map(([k, v]): [string, string] => [f.attrCase ? k.toLowerCase() : k, v]).sort((x, y) => x[0] < y[0] ? -1 : 1).map(([k, v]) => ` ${k}="${esc(v)}"`).join('')

function ours (nodes: readonly AnyNode[], f: Forgive, inTable = false): string {
  let s = ''
  for (const n of nodes) {
    if (n.type === 'text') s += esc(n.data)
    else if (n.type === 'comment') s += `<!--${n.data}-->`
    else if (n.type === 'tag' || n.type === 'script' || n.type === 'style') {
      const table = inTable || n.name === 'table'
      const kids = ours(n.children, f, table)
      // parse5 ignores cell, row and section tags outside a table; libxml2 keeps them.
      if (f.strayCells && !inTable && /^(td|th|tr|tbody|thead|tfoot)$/.test(n.name)) s += kids
      else s += `<${n.name}${attrsOf(Object.entries(n.attribs), f)}>${kids}</${n.name}>`
    }
  }
  return s
}

function theirs (nodes: readonly P5Node[], f: Forgive): string {
  let s = ''
  for (const n of nodes) {
    if (n.nodeName === '#text') s += esc((n as DefaultTreeAdapterMap['textNode']).value)
    else if (n.nodeName === '#comment') s += `<!--${(n as DefaultTreeAdapterMap['commentNode']).data}-->`
    else if ('tagName' in n) {
      const el = n as DefaultTreeAdapterMap['element']
      const kids = theirs(el.tagName === 'template' ? (el as DefaultTreeAdapterMap['template']).content.childNodes : el.childNodes, f)
      // An element parse5 implied has no source location.
      if (f.tbody && el.tagName === 'tbody' && el.sourceCodeLocation == null) s += kids
      else s += `<${el.tagName}${attrsOf(el.attrs.map(a => [a.name, a.value]), f)}>${kids}</${el.tagName}>`
    }
  }
  return s
}

/** What kind of difference remains, from the markup around the first divergence. */
function classify (a: string, b: string): string {
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  const from = Math.max(a.lastIndexOf('<', i), 0)
  const before = a.slice(Math.max(0, from - 120), from)
  const x = a.slice(from, i + 40)
  const y = b.slice(from, i + 40)
  if (/^<table\b/.test(x) && !/^<table\b/.test(y)) return 'foster parenting: parse5 moves misplaced content out of tables (libxml2 does not)'
  if (/<form\b/.test(before.slice(-40) + x) && /<table\b/.test(before)) return 'a <form> in a table: parse5 leaves it empty and moves on (libxml2 nests the rows in it)'
  if (/^<(b|i|em|strong|a)\b/.test(b.slice(i)) || /<\/(b|i|em|strong|a)>$/.test(b.slice(from, i + 4))) return 'formatting reconstructed after a block closed it (parse5; libxml2 does not)'
  if (/<table\b/.test(before)) return 'foster parenting: parse5 moves misplaced content out of tables (libxml2 does not)'
  return `other: ours ${JSON.stringify(x)} vs parse5 ${JSON.stringify(y)}`
}

const steps: Array<[string, Forgive]> = [
  ['the same tree', { attrCase: false, tbody: false, strayCells: false }],
  ['the same but for SVG attribute case (parse5 writes viewBox; libxml2, like Livery, lowercases)', { attrCase: true, tbody: false, strayCells: false }],
  ['the same but for parse5\'s implied <tbody> (libxml2 adds none)', { attrCase: true, tbody: true, strayCells: false }],
  ['the same but for cells outside a table (parse5 drops the tags; libxml2 keeps the elements)', { attrCase: true, tbody: true, strayCells: true }]
]
const all = steps[steps.length - 1][1]
const r = rng(20240)
const counts = new Map<string, { n: number, examples: string[] }>()
const count = (k: string, html: string): void => {
  let e = counts.get(k)
  if (e === undefined) { e = { n: 0, examples: [] }; counts.set(k, e) }
  e.n++
  if (e.examples.length < show) e.examples.push(html)
}
for (let i = 0; i < pages; i++) {
  const html = page(r)
  const doc = parsePage(html)
  const p5 = parse(html, { sourceCodeLocationInfo: true })
  const step = steps.find(([, f]) => ours(doc.children, f) === theirs(p5.childNodes, f))
  if (step !== undefined) count(step[0], html)
  else count(classify(ours(doc.children, all), theirs(p5.childNodes, all)), html)
}
console.log(`${pages} generated pages, compared with parse5:`)
for (const [k, e] of [...counts].sort((x, y) => y[1].n - x[1].n)) {
  console.log(`${String(e.n).padStart(6)}  ${k}`)
  for (const ex of e.examples) console.log(`          ${JSON.stringify(ex).slice(0, 240)}`)
}

// The crafted deep page of issue 14: stray end tags and forms under a 6,000-deep stack (62 KB).
const crafted = '<div>'.repeat(6000) + '</span><form>'.repeat(2200) + '</div>'.repeat(1000)
const times: number[] = []
for (let i = 0; i < 5; i++) parsePage(crafted)
for (let i = 0; i < 30; i++) {
  const t0 = performance.now()
  parsePage(crafted)
  times.push(performance.now() - t0)
}
times.sort((x, y) => x - y)
console.log(`\ncrafted page: ${(crafted.length / 1024).toFixed(0)} KB, parse median ${times[15].toFixed(2)} ms, max ${times[29].toFixed(2)} ms`)
