import t from 'tap'
import { rng } from './helpers.ts'
import { parseDocument } from 'htmlparser2'
import type { AnyNode } from 'domhandler'
import { isVerbatim, parsePage, type SourceDocument, type SourceElement } from '../../src/theme/parse.ts'
import { classList, indexOf } from '../../src/theme/dom-index.ts'
import { serializeNodes } from '../../src/theme/html.ts'
import { fastScan, type ScanSink } from '../../src/theme/scan.ts'

const pieces = ['<div>', '</div>', '<p>', '</p>', '<table>', '<tr>', '<td>', '</td>', '</table>', '<tbody>', '<thead>', '<b>', '</i>',
  '<i>', '</b>', '<ul><li>', '<li>', '</ul>', '<dl><dt>', '<dd>', '<h1>', '<h2>', '</h1>', '<form>', '</form>', '<input name=q>',
  '<title>T &amp; <b>', '</title>', '<script>if (a < b && c) {', '</script>', '<style>p{}', '</style>', '<!-- c', '-->', '<!---->',
  '<!-->', '<!-- a -- b -->', '<![CDATA[x]]>', '<a href="x>y', '<a href="?a=1&amp;b=2&c&copy=3">', '<img src=x onerror=1', "<div class='a\"b'>",
  '<br/>', '</br>', '</img>', '<select><option>', '<optgroup>', '<textarea>', 'a &lt; b', '</textarea>', '&amp;', '&bogus;', '&#xD800;',
  '&#0;', '&#128;', '&copy', '&notit;', '&amp', '&nbsp;&quot;&apos;&gt;', '<', '>', '"', "'", '<html>', '<body class="x">', '</body>',
  '</html>', '<head>', '<meta charset="utf-8">', '<nav id="portal-globalnav">', '</nav>', '<svg viewBox="0 0 1 1"><clippath><path d="M0"/></clippath>',
  '<foreignobject><p>x</p></foreignobject>', '</svg>', '<svg><title>s</title><![CDATA[<b>]]><script>a &amp; b</script>', '<math><mi>x</mi>', '</math>',
  '<frameset>', '<plaintext>', '<xmp><b>&amp;</xmp>', '<iframe><p>&amp;</iframe>', '<!DOCTYPE html>', '<?php echo 1 ?>', '<div id=a id=b>',
  '<p =x>', '<"x">', '</ >', '<a/b c>', '<A HREF=X CLASS="Y z">', '<image src=i>', 'text ', '\u00e9\u4e2d\ud83d\ude00 ', '\u0000', '\ufffd',
  '<div/>', '<rt>', '<rp>', '<tfoot>', '<button>', '<x-custom a:b="c">']

function soup (r: () => number): string {
  let s = ''
  const n = 20 + Math.floor(r() * 200)
  for (let i = 0; i < n; i++) s += pieces[Math.floor(r() * pieces.length)]
  return s
}

/** The first difference between two trees, or null: names, attributes (with order), node types, text and links. */
function diff (a: readonly AnyNode[], b: readonly AnyNode[], path: string): string | null {
  if (a.length !== b.length) return `${path}: ${a.length} vs ${b.length} children`
  for (let i = 0; i < a.length; i++) {
    const x = a[i]; const y = b[i]; const p = `${path}/${i}`
    if (x.type !== y.type) return `${p}: type ${x.type} vs ${y.type}`
    if (i > 0 && (x.prev !== a[i - 1] || a[i - 1].next !== x)) return `${p}: sibling links`
    if ('data' in x && 'data' in y && x.data !== y.data) return `${p}: data ${JSON.stringify(x.data)} vs ${JSON.stringify(y.data)}`
    if ('name' in x && 'name' in y && x.name !== y.name) return `${p}: name ${x.name} vs ${y.name}`
    if ('attribs' in x && 'attribs' in y && JSON.stringify(Object.entries(x.attribs)) !== JSON.stringify(Object.entries(y.attribs))) {
      return `${p}: attribs ${JSON.stringify(x.attribs)} vs ${JSON.stringify(y.attribs)}`
    }
    if ('children' in x && 'children' in y) {
      for (const c of x.children) if (c.parent !== x) return `${p}: parent link`
      const d = diff(x.children, y.children, `${p}<${'name' in x ? x.name : x.type}>`)
      if (d !== null) return d
    }
  }
  return null
}

/** What is wrong with a document's links or index (the adoption agency moves nodes), or null. */
function linksOf (doc: SourceDocument): string | null {
  const seen = new Set<AnyNode>()
  const stack: AnyNode[] = [doc]
  while (stack.length > 0) {
    const n = stack.pop() as AnyNode
    if (!('children' in n)) continue
    for (let i = 0; i < n.children.length; i++) {
      const c: AnyNode = n.children[i]
      if (c.parent !== n) return 'parent link'
      if (c.prev !== (n.children[i - 1] ?? null) || c.next !== (n.children[i + 1] ?? null)) return 'sibling links'
      if (c.type === 'tag' || c.type === 'script' || c.type === 'style') seen.add(c)
      stack.push(c)
    }
  }
  if (doc.elements.length !== seen.size || !doc.elements.every(e => seen.has(e))) return 'index lists elements not in the tree'
  const html = doc.children.filter(c => c.type === 'tag')
  if (html.length !== 1 || (html[0] as SourceElement).name !== 'html') return 'no single <html>'
  const top = (html[0] as SourceElement).children.filter(c => c.type === 'tag').map(c => (c as SourceElement).name).join()
  if (top !== 'head,body') return `<html> holds ${top}`
  return null
}

/** Markup of the kind CMSs emit, which the fast scanner handles itself (no fallback). */
const cleanPieces = ['<div class="a b">', '</div>', '<p>', '</p>', '<P CLASS=Up>', '<ul><li>', '<li class=\'x\'>', '</ul>', '<table><tr><td>',
  '</td><td>', '</table>', '<h2 id="h">', '</h2>', '<a href="/x?a=1&amp;b=2" title=\'it&#39;s\'>', '</a>', '<img src=/i.png alt="">',
  '<br>', '<br/>', '<input disabled value = "v" >', '<span>', '</span>', 'text &amp; more &copy; &#233; &notin; ', 'caf\u00e9 \u2014 ',
  '<!-- a comment -->', '<!-- a -- b -->', '<script>if (a < b && c) { x = "</p>" }</script>', '<SCRIPT type="x">1</SCRIPT >',
  '<style>p > a { color: red }</style>', '<title>T &amp; <b>x</b></title>', '<textarea>a &lt; b</textarea>', '<script/>x</script>', '<b>', '</b>',
  '<svg viewBox="0 0 1 1"><clipPath id=c><path d="M0 0"/></clipPath><title>s &amp; t</title><style>x</style></svg>', '<math><mi>x</mi></math>',
  '<form>', '</form>', '<select><option>1<option>2</select>', '<dl><dt>t<dd>d</dl>', '<x-tag data-x="1">', '</x-tag>', '\n  ', '</i>', '</p>']

function cleanPage (r: () => number): string {
  let s = r() < 0.5 ? '<!DOCTYPE html><html><head><title>x</title></head><body>' : ''
  const n = 20 + Math.floor(r() * 200)
  for (let i = 0; i < n; i++) s += cleanPieces[Math.floor(r() * cleanPieces.length)]
  return s
}

const scanOnly: ScanSink = { isInForeignContext: () => false, attribute () {}, closeTag () {}, oncomment () {}, ondeclaration () {}, onend () {},
  onopentagend () {}, onopentagname () {}, onselfclosingtag () {}, ontext () {} }

t.test('both tokenizer paths build the same tree on broken pages', async t => {
  const r = rng(7)
  let differing = 0
  for (let i = 0; i < 400; i++) {
    const html = soup(r)
    const doc = parsePage(html)
    const d = diff(doc.children, parsePage(html, { tokenizer: 'full' }).children, '') ?? linksOf(doc)
    if (d !== null && differing++ < 5) t.fail(`page ${i}: ${d}\n${html}`)
  }
  t.equal(differing, 0, 'all 400 pages parse identically on both paths, with consistent links and index')
})

t.test('the fast scanner handles well-formed pages itself and builds the same tree', async t => {
  const r = rng(3)
  let differing = 0
  let fast = 0
  for (let i = 0; i < 300; i++) {
    const html = cleanPage(r)
    if (fastScan(html, scanOnly)) fast++
    const d = diff(parsePage(html).children, parsePage(html, { tokenizer: 'full' }).children, '')
    if (d !== null && differing++ < 5) t.fail(`page ${i}: ${d}\n${html}`)
  }
  t.equal(differing, 0, 'all 300 pages parse identically')
  t.equal(fast, 300, 'no page needed the full tokenizer')
  t.equal(fastScan('<p>a < b</p>', scanOnly), false, 'a bare < is left to the full tokenizer')
  t.equal(fastScan('<div a="1"b="2">', scanOnly), false, 'unusual attribute syntax is left to the full tokenizer')
  t.equal(fastScan('<![CDATA[x]]>', scanOnly), false, 'CDATA is left to the full tokenizer')
  t.equal(fastScan('<div class="x', scanOnly), false, 'a tag cut off by the end is left to the full tokenizer')
})

t.test('well-formed pages parse as htmlparser2 parses them', async t => {
  // Where nothing is implied or misnested, the tree is htmlparser2's (and every parser's).
  const pages = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>T &amp; U</title></head>' +
    '<body class="a"><div id="x"><p>One <b>two</b> &copy;</p><ul><li>a</li><li>b</li></ul><table><tbody><tr><td>c</td></tr></tbody></table>' +
    '<script>if (a < b) x()</script><svg viewBox="0 0 1 1"><clipPath><path d="M0"/></clipPath></svg></div></body></html>']
  for (const html of pages) {
    for (const tokenizer of ['auto', 'full'] as const) t.equal(diff(parsePage(html, { tokenizer }).children, parseDocument(html, { decodeEntities: true }).children, ''), null, tokenizer)
  }
})

t.test('verbatim elements read back from the source as their re-serialisation does', async t => {
  const r = rng(11)
  let checked = 0
  for (let i = 0; i < 300; i++) {
    const html = soup(r)
    const doc = parsePage(html)
    const stack: AnyNode[] = [...doc.children]
    while (stack.length > 0) {
      const n = stack.pop() as AnyNode
      if (isVerbatim(n)) {
        const src = html.slice(n.startIndex ?? 0, (n.endIndex ?? 0) + 1)
        // Compared with the serialiser's output, not with the node: both are read back out of their original
        // context (e.g. outside <svg>), which changes some trees the same way for both.
        const fromSource = parseDocument(src, { decodeEntities: true }).children
        const fromTree = parseDocument(serializeNodes([n], null), { decodeEntities: true }).children
        const d = diff(fromSource, fromTree, '')
        if (d !== null) { t.fail(`page ${i}: ${JSON.stringify(src)}: ${d}`); return }
        checked++
      }
      if ('children' in n) stack.push(...n.children)
    }
  }
  t.ok(checked > 100, `${checked} verbatim subtrees checked`)
})

t.test('an element closed implicitly, or holding anything the serialiser rewrites, is not verbatim', async t => {
  const html = '<div id="a"><p>one<p>two</div><div id="b"><span>x</span></div><div id="c"><meta charset="latin1"></div>' +
    '<div id="d"><!--x--!>y--></div><div id="e">a</i>b</div><div id="f"><p =x>z</p></div><div id="g">&amp; <b>&copy;</b></div>'
  const doc = parsePage(html)
  const byId = (id: string): SourceElement => indexOf(doc).byId.get(id)?.[0] as SourceElement
  t.equal(byId('a').verbatim, false, 'implied </p>')
  t.equal(byId('b').verbatim, true, 'well-formed')
  t.equal(byId('c').verbatim, false, 'charset meta is rewritten')
  t.equal(byId('d').verbatim, false, 'comment a browser would end early')
  t.equal(byId('e').verbatim, false, 'stray end tag')
  t.equal(byId('f').verbatim, false, 'attribute name the serialiser drops')
  t.equal(byId('g').verbatim, true, 'entities are fine')
  t.equal((byId('g').children[0] as { data: string }).data, '& ', 'text is decoded')
  t.equal(html.slice(byId('g').startIndex ?? 0, (byId('g').endIndex ?? 0) + 1), '<div id="g">&amp; <b>&copy;</b></div>')
})

t.test('the index is built while parsing, in document order', async t => {
  const doc = parsePage('<div class="a b" id="x"><p class="b">1</p></div><p class=" b ">2</p>')
  const ix = indexOf(doc)
  t.equal(ix.order, null, 'no second walk')
  t.same(classList(ix, 'b').map(e => e.name), ['div', 'p', 'p'])
  t.same(classList(ix, 'a').map(e => e.name), ['div'])
  t.same(classList(ix, 'c'), [])
  t.same(ix.byTag.get('p')?.length, 2)
  t.same(ix.byId.get('x')?.[0].name, 'div')
})
