/**
 * The trees parse.ts builds for markup where a naive builder goes wrong, each
 * written out as the tree browsers (parse5) and libxml2 agree on, or as
 * libxml2's where they differ on purpose (no implied <tbody>, no foster
 * parenting). Trees are compared as their full re-serialisation.
 */
import t from 'tap'
import type { AnyNode, Element } from 'domhandler'
import { parsePage, parseTheme } from '../../src/theme/parse.ts'
import { serializeNodes } from '../../src/theme/html.ts'
import { selectNodes } from '../../src/theme/select.ts'
import { parseXPath } from '../../src/theme/xpath-parse.ts'

const page = (html: string): string => serializeNodes(parsePage(html).children, null)
/** The page's tree, checked to be the same on both tokenizer paths. */
function tree (html: string): string {
  const fast = page(html)
  const full = serializeNodes(parsePage(html, { tokenizer: 'full' }).children, null)
  return fast === full ? fast : `the tokenizer paths differ: ${fast} vs ${full}`
}
const inBody = (body: string, head = ''): string => `<html><head>${head}</head><body>${body}</body></html>`

t.test('a theme closes elements written as <x/>; a content page does not', async t => {
  const theme = '<html><head><script src="x.js"/><title>T</title></head><body><div id="messages"/><p>after</p></body></html>'
  t.equal(serializeNodes(parseTheme(theme).children, null),
    '<html><head><script src="x.js"></script><title>T</title></head><body><div id="messages"></div><p>after</p></body></html>')
  t.equal(page(theme), '<html><head><script src="x.js"><title>T</title></head><body><div id="messages"/><p>after</p></body></html></script></head><body></body></html>',
    'in content `/>` means nothing, so the script runs to the end, as in a browser')
  t.equal(serializeNodes(parseTheme('<body><svg><path d="M0"/></svg><br/><span/>x</body>').children, null),
    '<html><head></head><body><svg><path d="M0"></path></svg><br><span></span>x</body></html>')
})

t.test('content without <html>/<body> gets the implied elements', async t => {
  t.equal(tree('<p>fragment</p>'), inBody('<p>fragment</p>'), 'a fragment')
  t.equal(tree('<title>Not found</title><h1>404</h1>'), inBody('<h1>404</h1>', '<title>Not found</title>'), 'an error page: title in head, the rest in body')
  t.equal(tree('<!DOCTYPE html>\n<meta charset="utf-8"><link rel=x href=y>\n<div>x</div>'),
    '<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="x" href="y">\n</head><body><div>x</div></body></html>', 'head elements before the first body element; space before them dropped')
  t.equal(tree('<html><head><title>t</title></head>text'), inBody('text', '<title>t</title>'), 'text after </head>')
  t.equal(tree('<html><body><p>x</p></body></html>'), inBody('<p>x</p>'), 'no <head>')
  t.equal(tree(''), inBody(''), 'empty input')
  t.equal(tree('<head><title>t</title><div>early</div></head><body class="b"><p>x</p></body>'),
    '<html><head><title>t</title></head><body class="b"><div>early</div><p>x</p></body></html>', 'a <div> in <head> starts the body')
  const doc = parsePage('<div id="main"><p>x</p></div>')
  t.same(selectNodes({ kind: 'css', src: 'body > #main' }, doc, {}).length, 1, 'body selectors match')
  t.same(selectNodes({ kind: 'xpath', src: '/html/body/div', ast: parseXPath('/html/body/div') }, doc, {}).length, 1, '/html/body/ paths match')
})

t.test('start tags that close an open <p>', async t => {
  for (const tag of ['address', 'article', 'aside', 'blockquote', 'center', 'details', 'dialog', 'dir', 'div', 'dl', 'fieldset',
    'figcaption', 'figure', 'footer', 'header', 'hgroup', 'main', 'menu', 'nav', 'ol', 'p', 'search', 'section', 'summary', 'ul',
    'h1', 'h6', 'pre', 'listing', 'form']) {
    t.equal(tree(`<p>a<${tag}>b</${tag}>`), inBody(`<p>a</p><${tag}>b</${tag}>`), tag)
  }
  t.equal(tree('<p>a<hr>b'), inBody('<p>a</p><hr>b'), 'hr')
  t.equal(tree('<!DOCTYPE html><p>a<table></table>'), `<!DOCTYPE html>${inBody('<p>a</p><table></table>')}`, 'table, in no-quirks mode')
  t.equal(tree('<p>a<table></table>'), inBody('<p>a<table></table></p>'), 'but not in quirks mode (no doctype)')
  t.equal(tree('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0 Transitional//EN"><p>a<table></table>'),
    `<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0 Transitional//EN">${inBody('<p>a<table></table></p>')}`, 'or with a legacy doctype')
  t.equal(tree('<p>a<span>b<div>c</div>'), inBody('<p>a<span>b</span></p><div>c</div>'), 'the <p> is closed from inside a <span>')
  t.equal(tree('<p>a<button><div>b</div></button>'), inBody('<p>a<button><div>b</div></button></p>'), 'but not from inside a <button> (button scope)')
  t.equal(tree('<p>a<li>b'), inBody('<p>a</p><li>b</li>'), 'li')
  t.equal(tree('<p>a<dd>b<dt>c'), inBody('<p>a</p><dd>b</dd><dt>c</dt>'), 'dd, dt')
  t.equal(tree('<p>a<xmp><b></xmp>'), inBody('<p>a</p><xmp><b></xmp>'), 'xmp')
  t.equal(tree('<p>a<span>b</span><em>c</em><img src=x>'), inBody('<p>a<span>b</span><em>c</em><img src="x"></p>'), 'phrasing content stays')
})

t.test('list items, definitions and table cells close their open siblings', async t => {
  const nav = '<ul id="nav"><li><p>Home<li><p>News<li><p>About</ul>'
  t.equal(tree(nav), inBody('<ul id="nav"><li><p>Home</p></li><li><p>News</p></li><li><p>About</p></li></ul>'), 'li closes li and p')
  const doc = parsePage(nav)
  const last = selectNodes({ kind: 'css', src: '#nav > li:last-child' }, doc, {}) as Element[]
  t.equal(serializeNodes(last, null), '<li><p>About</p></li>', '#nav > li:last-child is the last item')
  t.equal(tree('<ul><li>a<ul><li>b</ul><li>c</ul>'), inBody('<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>'), 'nested lists')
  t.equal(tree('<ul><li>a<div>b<li>c</ul>'), inBody('<ul><li>a<div>b</div></li><li>c</li></ul>'), 'li closes li through a div')
  t.equal(tree('<li>a<section><li>b'), inBody('<li>a<section><li>b</li></section></li>'), 'but not through a section (list item scope)')
  t.equal(tree('<dl><dt>a<p>b<dd>c<dt>d</dl>'), inBody('<dl><dt>a<p>b</p></dt><dd>c</dd><dt>d</dt></dl>'), 'dt/dd')
  const table = '<table><tr><td><p>one<td><p>two<tr><th>three<td>four</table>'
  t.equal(tree(table), inBody('<table><tr><td><p>one</p></td><td><p>two</p></td></tr><tr><th>three</th><td>four</td></tr></table>'), 'cells and rows')
  const cells = selectNodes({ kind: 'css', src: 'td:nth-child(2)' }, parsePage(table), {}) as Element[]
  t.equal(serializeNodes(cells, null), '<td><p>two</p></td><td>four</td>', 'td:nth-child(2) selects the second cells')
  t.equal(tree('<table><thead><tr><th>h<tbody><tr><td>b<tfoot><tr><td>f</table>'),
    inBody('<table><thead><tr><th>h</th></tr></thead><tbody><tr><td>b</td></tr></tbody><tfoot><tr><td>f</td></tr></tfoot></table>'), 'sections')
  t.equal(tree('<table><tr><td>a<table><tr><td>b<td>c</table><td>d</table>'),
    inBody('<table><tr><td>a<table><tr><td>b</td><td>c</td></tr></table></td><td>d</td></tr></table>'), 'nested tables')
  t.equal(tree('<table><td>a<td>b</table>'), inBody('<table><td>a</td><td>b</td></table>'), 'no implied <tbody>/<tr> (libxml2, on purpose)')
  t.equal(tree('<table><div>x</div><tr><td>a</table>'), inBody('<table><div>x</div><tr><td>a</td></tr></table>'), 'no foster parenting (libxml2, on purpose)')
})

t.test('misnested formatting keeps text in its paragraph (adoption agency)', async t => {
  t.equal(tree('<b>x<p>y</b>z</p>'), inBody('<b>x</b><p><b>y</b>z</p>'), 'b around the start of a p')
  t.equal(tree('<b><i>x<p>y</b>z</p>'), inBody('<b><i>x</i></b><i><p><b>y</b>z</p></i>'), 'a formatting element between is copied')
  t.equal(tree('<a href="/x">link<div>block</a>after</div>'), inBody('<a href="/x">link</a><div><a href="/x">block</a>after</div>'), 'a around a div')
  t.equal(tree('<div><b>x<div>y</b>z</div></div>'), inBody('<div><b>x</b><div><b>y</b>z</div></div>'), 'nested blocks')
  t.equal(tree('<b><span><p>y</b>z'), inBody('<b><span></span></b><p><b>y</b>z</p>'), 'a non-formatting element between stops being open')
  t.equal(tree('<p><b>x</p>y</b>'), inBody('<p><b>x</b></p>y'), '</p> closes the b inside it (no reconstruction, as libxml2)')
  const doc = parsePage('<b>x<p>y</b>z</p>')
  t.equal(serializeNodes(selectNodes({ kind: 'css', src: 'p' }, doc, {}) as AnyNode[], null), '<p><b>y</b>z</p>')
})

t.test('a second <body> merges into the first; markup after </body> and </html> goes into the body', async t => {
  t.equal(tree('<body class="a"><p>x</p><body id="b" class="c"><p>y</p></body>'), '<html><head></head><body class="a" id="b"><p>x</p><p>y</p></body></html>', 'second body')
  t.equal(tree('<html lang="en"><body><p>x</p><html dir="rtl"></body>'), '<html lang="en" dir="rtl"><head></head><body><p>x</p></body></html>', 'second html')
  t.equal(tree('<html><body><p>x</p></body></html><div id="late">y</div>'), inBody('<p>x</p><div id="late">y</div>'), 'after </html>')
  t.equal(tree('<html><body><p>x</p></body><p>z</p></html>'), inBody('<p>x</p><p>z</p>'), 'after </body>')
  t.equal(tree('<html><body><p>x</p></body>\n<!--a-->\n</html>\n<!--b-->'), '<html><head></head><body><p>x</p>\n\n\n</body><!--a--></html><!--b-->', 'space goes into the body, comments after it')
  const doc = parsePage('<html><body><p>x</p></body></html><div id="late">y</div>')
  t.equal(selectNodes({ kind: 'css', src: 'body > #late' }, doc, {}).length, 1)
})

t.test('a deep page with stray end tags and forms parses correctly', async t => {
  // Each of these used to search the whole stack; now they are answered from counts and marks.
  const depth = 3000
  const html = '<div>'.repeat(depth) + '</form><form>' + '</span><form></x-y>'.repeat(500) + 'end' + '</div>'.repeat(depth)
  const doc = parsePage(html)
  t.equal(doc.elements.filter(e => e.name === 'form').length, 1, 'one form; the others are ignored')
  let d = 0
  for (let n: AnyNode | null = selectNodes({ kind: 'css', src: 'form' }, doc, {})[0] as AnyNode; n !== null; n = n.parent) d++
  t.equal(d, depth + 4, 'the form is inside the innermost div')
  const li = '<ul>' + '<li><b>'.repeat(2000) + '</b>'.repeat(2000) + '</ul>'
  t.equal(parsePage(li).elements.filter(e => e.name === 'li').length, 2000, 'list items under formatting elements')
})

t.test('a legacy script comment is written back as it was; only one that would swallow the theme is escaped', async t => {
  const legacy = "<script><!--\ndocument.write('<script src=\"x.js\"><\\/script>') //--></script>"
  t.equal(page(legacy), `<html><head>${legacy}</head><body></body></html>`, 'the document.write idiom is untouched')
  const closed = "<script><!-- if (a) { b() } --></script>"
  t.equal(page(closed), `<html><head>${closed}</head><body></body></html>`, 'a plain commented script')
  // The content's script ends at its first </script>, leaving `<!-- <script ` open: a browser would read the
  // theme's closing </script> as part of the script, so the comment opener is neutralised.
  t.equal(page('<script><!-- x = "<script ";</script><p>after</p>'),
    '<html><head><script><\\!-- x = "<script ";</script></head><body><p>after</p></body></html>')
})
