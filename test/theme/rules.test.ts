import t from 'tap'
import { bodyTree, themeIt, tree, THEME, CONTENT } from './helpers.ts'

const body = (html: string): ReturnType<typeof bodyTree> => bodyTree(`<body>${html}</body>`)
const themeBody = (inner: string): string => `<html><head><title>Theme</title></head><body>${inner}</body></html>`

t.test('replace swaps the theme element for the content element', async t => {
  const out = await themeIt('<replace css:theme="#main" css:content="#content"/>', THEME, CONTENT)
  const b = bodyTree(out)
  t.same(b[2], ['main', { id: 'content' }, [['h1', { class: 'documentFirstHeading' }, ['Page']], ['p', { class: 'lead' }, ['Lead']], ['p', { class: 'hidden' }, ['Secret']], ['div', { id: 'related' }, [['a', { href: '/r' }, ['R']]]]]])
})

t.test('replace whose content matches nothing removes the theme element', async t => {
  const out = await themeIt('<replace css:theme="#side" css:content="#nothing"/>', THEME, CONTENT)
  t.notMatch(out, /id="side"/)
})

t.test('if-content="" keeps the theme element when the content is missing', async t => {
  const out = await themeIt('<replace css:theme="#side" css:content="#nothing" if-content=""/>', THEME, CONTENT)
  t.match(out, /<aside id="side">Side<\/aside>/)
  const out2 = await themeIt('<replace css:theme="#side" css:content="#related" if-content=""/>', THEME, CONTENT)
  t.match(out2, /<div id="related">/)
  t.notMatch(out2, /id="side"/)
})

t.test('theme-children and content-children', async t => {
  const out = await themeIt('<replace css:theme-children="#nav" css:content-children="#portal-globalnav"/>', THEME, CONTENT)
  t.same(bodyTree(out)[1], ['nav', { id: 'nav' }, [['ul', {}, [['li', {}, [['a', { href: '/' }, ['Home']]]], ['li', {}, [['a', { href: '/news' }, ['News']]]]]]]])
  const out2 = await themeIt('<replace theme-children="//div[@id=\'main\']" content="//h1"/>', THEME, CONTENT)
  t.same(bodyTree(out2)[2], ['div', { id: 'main' }, [['h1', { class: 'documentFirstHeading' }, ['Page']]]])
})

t.test('before and after, on the element and on its children', async t => {
  const th = themeBody('<div id="x"><p>mid</p></div>')
  const ct = '<body><b id="a">A</b><i id="b">B</i></body>'
  const out = await themeIt(`<before css:theme="#x" css:content="#a"/><after css:theme="#x" css:content="#b"/>
    <before css:theme-children="#x" css:content="#b"/><after css:theme-children="#x" css:content="#a"/>`, th, ct)
  t.same(bodyTree(out), body('<b id="a">A</b><div id="x"><i id="b">B</i><p>mid</p><b id="a">A</b></div><i id="b">B</i>'))
})

t.test('drop on the theme and on the content', async t => {
  const out = await themeIt('<drop css:theme="#side"/><drop theme="/html/body/header"/><drop css:content=".hidden"/><replace css:theme="#main" css:content="#content"/>', THEME, CONTENT)
  t.notMatch(out, /Side|Logo|Secret/)
  t.match(out, /Lead/)
})

t.test('strip on the theme and on the content keeps children', async t => {
  const out = await themeIt('<strip css:theme="#top"/><strip css:content="#related"/><replace css:theme="#main" css:content="#content"/>', THEME, CONTENT)
  t.notMatch(out, /id="top"|id="related"/)
  t.match(out, /<div id="logo">Logo<\/div>/)
  t.match(out, /<a href="\/r">R<\/a>/)
})

t.test('attributes: merge, copy, replace attributes, drop attributes', async t => {
  const th = themeBody('<div id="x" class="t" title="tt" lang="en">x</div>')
  const ct = '<body><div id="c" class="c1 c2" title="ct" data-a="1">c</div></body>'
  const merged = await themeIt('<merge attributes="class" css:theme="#x" css:content="#c"/>', th, ct)
  t.same(bodyTree(merged), body('<div id="x" class="t c1 c2" title="tt" lang="en">x</div>'))
  const sep = await themeIt('<merge attributes="class" separator="," css:theme="#x" css:content="#c"/>', th, ct)
  t.match(sep, /class="t,c1 c2"/)
  const copied = await themeIt('<copy attributes="title data-a" css:theme="#x" css:content="#c"/>', th, ct)
  t.same(bodyTree(copied), body('<div id="x" class="t" title="ct" lang="en" data-a="1">x</div>'))
  const all = await themeIt('<replace attributes="*" css:theme="#x" css:content="#c"/>', th, ct)
  t.same(bodyTree(all), body('<div id="c" class="c1 c2" title="ct" lang="en" data-a="1">x</div>'))
  // Two `*` copies overlay each other; the theme's attributes neither copies sets stay.
  const twice = await themeIt('<copy attributes="*" css:theme="#x" css:content="#c"/><copy attributes="*" css:theme="#x" css:content="#d"/>', th,
    '<body><div id="c" class="c1" data-a="1">c</div><div id="d" title="dt">d</div></body>')
  t.same(bodyTree(twice), body('<div id="d" class="c1" title="dt" lang="en" data-a="1">x</div>'))
  const dropped = await themeIt('<drop attributes="lang title" css:theme="#x"/>', th, ct)
  t.same(bodyTree(dropped), body('<div id="x" class="t">x</div>'))
  const dropContent = await themeIt('<drop attributes="class" css:content="#c"/><replace css:theme="#x" css:content="#c"/>', th, ct)
  t.same(bodyTree(dropContent), body('<div id="c" title="ct" data-a="1">c</div>'))
})

t.test('copy without attributes replaces the children (XDV)', async t => {
  const out = await themeIt('<copy css:theme="#main" css:content="h1"/>', THEME, CONTENT)
  t.same(bodyTree(out)[2], ['div', { id: 'main' }, [['h1', { class: 'documentFirstHeading' }, ['Page']]]])
})

t.test('phase order is not file order', async t => {
  const th = themeBody('<div id="x">x</div>')
  const ct = '<body><p id="a">A</p><p id="b">B</p></body>'
  // after is written first, replace second: both still apply, replace at the node and after beside it.
  const out = await themeIt('<after css:theme="#x" css:content="#b"/><replace css:theme="#x" css:content="#a"/>', th, ct)
  t.same(bodyTree(out), body('<p id="a">A</p><p id="b">B</p>'))
  // drop wins over replace on the same node; before still applies.
  const out2 = await themeIt('<replace css:theme="#x" css:content="#a"/><drop css:theme="#x"/><before css:theme="#x" css:content="#b"/>', th, ct)
  t.same(bodyTree(out2), body('<p id="b">B</p>'))
})

t.test('if-content chain: if / else-if / else', async t => {
  const th = themeBody('<div id="x">x</div>')
  const rules = `<replace css:theme="#x" css:content="#a" css:if-content="#a"/>
    <replace css:theme="#x" css:content="#b" if-content="//*[@id='b']"/>
    <replace css:theme="#x" css:content="#c"/>`
  t.same(bodyTree(await themeIt(rules, th, '<body><p id="a">A</p><p id="b">B</p></body>')), body('<p id="a">A</p>'))
  t.same(bodyTree(await themeIt(rules, th, '<body><p id="b">B</p><p id="c">C</p></body>')), body('<p id="b">B</p>'))
  t.same(bodyTree(await themeIt(rules, th, '<body><p id="c">C</p></body>')), body('<p id="c">C</p>'))
})

t.test('if-not-content, css:if-not-content', async t => {
  const th = themeBody('<div id="x">x</div><div id="y">y</div>')
  const out = await themeIt('<drop css:theme="#x" css:if-not-content="#a"/><drop css:theme="#y" if-not-content="//p"/>', th, '<body><p>p</p></body>')
  t.same(bodyTree(out), body('<div id="y">y</div>'))
})

t.test('if-path and if-not-path use Diazo segment matching', async t => {
  const th = themeBody('<div id="x">x</div>')
  const rule = (p: string): string => `<drop css:theme="#x" if-path="${p}"/>`
  const dropped = async (p: string, path: string): Promise<boolean> => !(await themeIt(rule(p), th, '<body></body>', { path })).includes('id="x"')
  t.ok(await dropped('/news', '/news'), 'prefix matches itself')
  t.ok(await dropped('/news', '/news/item'), 'prefix matches below')
  t.notOk(await dropped('/news', '/newsletter'), 'prefix is segment-wise')
  t.notOk(await dropped('/news', '/a/news'), 'prefix anchors at the root')
  t.ok(await dropped('item/', '/news/item'), 'suffix')
  t.notOk(await dropped('item/', '/news/item/x'), 'suffix anchors at the end')
  t.ok(await dropped('/news/', '/news/'), 'exact')
  t.notOk(await dropped('/news/', '/news/item'), 'exact is exact')
  t.ok(await dropped('news', '/a/news/b'), 'anywhere')
  t.ok(await dropped('/other /news', '/news'), 'alternatives separated by whitespace')
  t.notOk(await dropped('/', '/anything'), '/ is anchored at both ends: it matches only the root')
  t.ok(await dropped('/', '/'), '/ matches the root')
  t.ok(await dropped('/', ''), 'an empty path is the root')
  t.ok(await dropped('/x /', '/'), 'the root as one of several alternatives')
  const notOut = await themeIt('<drop css:theme="#x" if-not-path="/news"/>', th, '<body></body>', { path: '/news/x' })
  t.match(notOut, /id="x"/)
})

t.test('if and if-not expressions over $path and parameters', async t => {
  const th = themeBody('<div id="a">a</div><div id="b">b</div><div id="c">c</div><div id="d">d</div>')
  const rules = `<drop css:theme="#a" if="$path = '/x'"/>
    <drop css:theme="#b" if="starts-with($path, '/y') and $mode = 'dark'"/>
    <drop css:theme="#c" if-not="not($mode = 'dark') or false()"/>
    <drop css:theme="#d" if="$mode = 'light'"/>`
  const out = await themeIt(rules, th, '<body></body>', { path: '/y/z', params: { mode: 'dark' } })
  t.same(bodyTree(out), body('<div id="a">a</div><div id="d">d</div>'))
})

t.test('nested rules AND their conditions', async t => {
  const th = themeBody('<div id="x">x</div>')
  const rules = `<rules if-path="/news"><rules css:if-content="#special"><drop css:theme="#x"/></rules></rules>`
  t.match(await themeIt(rules, th, '<body><p id="special"></p></body>', { path: '/other' }), /id="x"/)
  t.match(await themeIt(rules, th, '<body></body>', { path: '/news' }), /id="x"/)
  t.notMatch(await themeIt(rules, th, '<body><p id="special"></p></body>', { path: '/news' }), /id="x"/)
})

t.test('inline HTML in rules is inserted', async t => {
  const th = themeBody('<div id="x">x</div>')
  const out = await themeIt('<after css:theme-children="#x"><p class="note">Hello <b>there</b></p><br/></after><replace css:theme="title"><title>Fixed</title></replace>', th, '<body></body>')
  t.same(bodyTree(out), body('<div id="x">x<p class="note">Hello <b>there</b></p><br></div>'))
  t.match(out, /<title>Fixed<\/title>/)
})

t.test('theme and notheme choose per request', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({
    'rules.xml': `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
      <notheme if-path="/plain"/>
      <notheme css:if-content="body.popup"/>
      <theme href="a.html" if-path="/a"/>
      <theme href="b.html" css:if-content="#use-b"/>
      <theme href="c.html"/>
      <replace css:theme="#slot" css:content="#c"/>
    </rules>`,
    'a.html': '<body><p>A</p><div id="slot"></div></body>',
    'b.html': '<body><p>B</p><div id="slot"></div></body>',
    'c.html': '<body><p>C</p><div id="slot"></div></body>'
  })
  const run = (html: string, path: string): string => { const o = transformCompiled(c, html, { path }); return o.kind === 'html' ? o.html : o.kind }
  t.match(run('<body><i id="c">x</i></body>', '/a/1'), /<p>A<\/p><i id="c">x<\/i>/)
  t.match(run('<body><i id="use-b"></i></body>', '/z'), /<p>B<\/p>/)
  t.match(run('<body></body>', '/z'), /<p>C<\/p>/)
  t.equal(run('<body></body>', '/plain'), 'notheme')
  t.equal(run('<body class="popup"></body>', '/a'), 'notheme')
})

t.test('no theme matching means notheme', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({
    'rules.xml': `<rules xmlns="http://namespaces.plone.org/diazo"><theme href="a.html" if-path="/a"/></rules>`,
    'a.html': '<body>A</body>'
  })
  t.equal(transformCompiled(c, '<p>x</p>', { path: '/b' }).kind, 'notheme')
})

t.test('href pulls content from another document; method="raw" ignores content drops', async t => {
  const th = themeBody('<div id="x"></div><div id="y"></div>')
  const extra = { 'side.html': '<html><body><div id="portlet"><p class="hidden">H</p><p>P</p></div></body></html>' }
  const rules = `<drop css:content=".hidden"/>
    <replace css:theme-children="#x" css:content="#portlet" href="side.html"/>
    <replace css:theme-children="#y" css:content="#portlet" href="side.html" method="raw"/>`
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const { rulesXml } = await import('./helpers.ts')
  const c = await compileMem({ 'rules.xml': rulesXml(rules), 'theme.html': th, ...extra })
  t.same(c.hrefs, ['file:///mem/side.html'])
  const out = transformCompiled(c, '<body></body>', { path: '/', hrefBodies: { 'file:///mem/side.html': extra['side.html'] } })
  t.equal(out.kind, 'html')
  const html = out.kind === 'html' ? out.html : ''
  t.same(bodyTree(html), body('<div id="x"><div id="portlet"><p>P</p></div></div><div id="y"><div id="portlet"><p class="hidden">H</p><p>P</p></div></div>'))
  const missing = transformCompiled(c, '<body></body>', { path: '/' })
  t.same(bodyTree(missing.kind === 'html' ? missing.html : ''), body('<div id="x"></div><div id="y"></div>'))
})

t.test('xi:include brings in another rules file with its conditions', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({
    'rules.xml': `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:xi="http://www.w3.org/2001/XInclude">
      <theme href="theme.html"/><xi:include href="more/extra.xml"/></rules>`,
    'more/extra.xml': '<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css" if-path="/x"><drop css:theme="#d"/></rules>',
    'theme.html': '<body><div id="d">d</div></body>'
  })
  const a = transformCompiled(c, '<p></p>', { path: '/x' })
  const b = transformCompiled(c, '<p></p>', { path: '/y' })
  t.notMatch(a.kind === 'html' ? a.html : '', /id="d"/)
  t.match(b.kind === 'html' ? b.html : '', /id="d"/)
})

t.test('legacy XDV namespaces and prepend/append', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({
    'rules.xml': `<rules xmlns="http://namespaces.plone.org/xdv" xmlns:css="http://namespaces.plone.org/xdv+css">
      <theme href="theme.html"/><prepend css:theme="#d" css:content="#a"/><append theme="//div[@id='d']" content="//*[@id='b']"/></rules>`,
    'theme.html': '<body><div id="d">d</div></body>'
  })
  const o = transformCompiled(c, '<body><i id="a">A</i><i id="b">B</i></body>', { path: '/' })
  t.same(bodyTree(o.kind === 'html' ? o.html : ''), body('<div id="d"><i id="a">A</i>d<i id="b">B</i></div>'))
})

t.test('theme-relative URLs are rewritten to the absolute prefix at compile time', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({
    'rules.xml': `<rules xmlns="http://namespaces.plone.org/diazo"><theme href="theme.html"/></rules>`,
    'theme.html': `<html><head><link rel="stylesheet" href="css/site.css"><script src="./js/a.js"></script>
      <style>@import "base.css"; body { background: url('img/bg.png') } .x { background: url(/abs.png) }</style>
      <!--[if lt IE 9]><script src="ie/html5.js"></script><![endif]--></head>
      <body background="bg.gif"><a href="#top">t</a><a href="../up.html">u</a><a href="http://ex.com/x">x</a><a href="/root">r</a>
      <img src="i.png" srcset="i.png 1x, i2.png 2x" style="background-image:url(s.png)"><a href="mailto:a@b">m</a></body></html>`
  }, { absolutePrefix: '/static/theme' })
  const o = transformCompiled(c, '<p></p>', { path: '/' })
  const html = o.kind === 'html' ? o.html : ''
  for (const want of ['href="/static/theme/css/site.css"', 'src="/static/theme/js/a.js"', '@import "/static/theme/base.css"',
    "url('/static/theme/img/bg.png')", 'url(/abs.png)', 'src="/static/up.html"'.replace('src', 'href'), 'href="#top"',
    'href="http://ex.com/x"', 'href="/root"', 'srcset="/static/theme/i.png 1x, /static/theme/i2.png 2x"',
    'url(/static/theme/s.png)', 'background="/static/theme/bg.gif"', 'src="/static/theme/ie/html5.js"', 'href="mailto:a@b"']) {
    t.ok(html.includes(want), want)
  }
  const abs = await compileMem({
    'rules.xml': `<rules xmlns="http://namespaces.plone.org/diazo"><theme href="theme.html"/></rules>`,
    'theme.html': '<link href="a.css">'
  }, { absolutePrefix: 'http://cdn.example/t' })
  const o2 = transformCompiled(abs, '<p></p>', { path: '/' })
  t.match(o2.kind === 'html' ? o2.html : '', 'href="http://cdn.example/t/a.css"')
})

t.test('issue 14: xlink:href, IE-conditional @import and (with a URL prefix) root-relative URLs take the prefix', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const theme = `<html><head><!--[if IE]><style>@import "ie.css"; .a { background: url(img/a.png) }</style><link href="ie2.css"><![endif]--></head>
    <body><svg><use xlink:href="icons.svg#i"></use></svg><a href="/">home</a><a href="//other.example/x">o</a><a href="#t">t</a><img src="/logo.png"></body></html>`
  const run = async (prefix: string): Promise<string> => {
    const c = await compileMem({ 'rules.xml': '<rules xmlns="http://namespaces.plone.org/diazo"><theme href="theme.html"/></rules>', 'theme.html': theme }, { absolutePrefix: prefix })
    const o = transformCompiled(c, '<p></p>', { path: '/' })
    return o.kind === 'html' ? o.html : ''
  }
  const path = await run('/static/t')
  for (const want of ['@import "/static/t/ie.css"', 'url(/static/t/img/a.png)', 'href="/static/t/ie2.css"', 'xlink:href="/static/t/icons.svg#i"',
    'href="/"', 'href="//other.example/x"', 'href="#t"', 'src="/logo.png"']) t.ok(path.includes(want), `path prefix: ${want}`)
  const url = await run('http://cdn.example/t/')
  for (const want of ['@import "http://cdn.example/t/ie.css"', 'xlink:href="http://cdn.example/t/icons.svg#i"', 'href="http://cdn.example/"',
    'href="http://other.example/x"', 'href="#t"', 'src="http://cdn.example/logo.png"']) t.ok(url.includes(want), `URL prefix: ${want}`)
})

t.test('output is HTML5 with a UTF-8 meta and the theme doctype', async t => {
  const out = await themeIt('<replace css:theme="title" css:content="title"/>', '<html><head><meta charset="latin1"><title>x</title></head><body></body></html>',
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"><title>Caf\u00e9 &amp; bar</title></head></html>')
  t.match(out, /^<!DOCTYPE html>/)
  t.match(out, /<head><meta charset="utf-8"><title>Caf\u00e9 &amp; bar<\/title><\/head>/)
  t.same(tree(out).length > 0, true)
})

t.test('content-side drop with a condition only applies when it holds', async t => {
  const out = await themeIt('<drop css:content=".lead" if-path="/x"/><replace css:theme="#main" css:content="#content"/>', THEME, CONTENT, { path: '/y' })
  t.match(out, /Lead/)
  const out2 = await themeIt('<drop css:content=".lead" if-path="/x"/><replace css:theme="#main" css:content="#content"/>', THEME, CONTENT, { path: '/x' })
  t.notMatch(out2, /Lead/)
})

t.test('ssi and esi methods emit include directives', async t => {
  const th = themeBody('<div id="x"></div>')
  const out = await themeIt('<replace css:theme-children="#x" href="/footer" method="ssi"/><after css:theme="#x" href="/esi" method="esi"/>', th, '<body></body>')
  t.match(out, '<div id="x"><!--#include  virtual="/footer"--></div><esi:include src="/esi"></esi:include>')
})

t.test('issue 14: a conditional replace after an unconditional one on the same node wins when it holds', async t => {
  const th = themeBody('<div id="x">x</div>')
  const rules = `<replace css:theme="#x" css:content="#a"/>
    <replace css:theme="#x" css:content="#b" css:if-content="#b"/>
    <replace css:theme-children="#x" css:content="#a"/>
    <replace css:theme-children="#x" css:content="#b" if-path="/kids"/>`
  t.same(bodyTree(await themeIt(rules, th, '<body><p id="a">A</p><p id="b">B</p></body>')), body('<p id="b">B</p>'))
  t.same(bodyTree(await themeIt(rules, th, '<body><p id="a">A</p></body>')), body('<p id="a">A</p>'), 'the unconditional rule is the otherwise')
  const kids = `<replace css:theme-children="#x" css:content="#a"/><replace css:theme-children="#x" css:content="#b" if-path="/kids"/>`
  t.same(bodyTree(await themeIt(kids, th, '<body><p id="a">A</p><p id="b">B</p></body>', { path: '/kids' })), body('<div id="x"><p id="b">B</p></div>'))
  t.same(bodyTree(await themeIt(kids, th, '<body><p id="a">A</p><p id="b">B</p></body>', { path: '/other' })), body('<div id="x"><p id="a">A</p></div>'))
})

t.test('issue 14: attribute drops apply first, the last merge/copy wins, and all content elements count', async t => {
  const th = themeBody('<div id="x" class="t" title="tt">x</div>')
  const ct = '<body><p class="a" title="one">1</p><p class="b" title="two">2</p><p>3</p></body>'
  // File order: copy, then drop; the drop still goes first, so the copied title survives.
  const dropLast = await themeIt('<copy attributes="title" css:theme="#x" css:content="p"/><drop attributes="title" css:theme="#x"/>', th, ct)
  t.same(bodyTree(dropLast), body('<div id="x" class="t" title="two">x</div>'), 'copy takes the last matched element')
  const merged = await themeIt('<merge attributes="class" css:theme="#x" css:content="p"/>', th, ct)
  t.same(bodyTree(merged), body('<div id="x" class="t a b" title="tt">x</div>'), 'merge joins every matched element')
  const lastWins = await themeIt('<merge attributes="class" css:theme="#x" css:content="p"/><copy attributes="class" css:theme="#x" css:content="p.a"/>', th, ct)
  t.same(bodyTree(lastWins), body('<div id="x" class="a" title="tt">x</div>'), 'a later copy wins over a merge')
  const mergeLast = await themeIt('<copy attributes="class" css:theme="#x" css:content="p.a"/><merge attributes="class" css:theme="#x" css:content="p.b"/>', th, ct)
  t.same(bodyTree(mergeLast), body('<div id="x" class="t b" title="tt">x</div>'), 'a later merge starts from the theme value')
})

t.test('issue 14: merge onto an attribute the theme lacks adds no empty value and no stray separator', async t => {
  const th = themeBody('<div class="x">x</div>')
  const ct = '<body><header id="header">h</header><p title="">p</p></body>'
  const out = await themeIt('<merge attributes="id title" css:theme=".x" css:content="header"/><merge attributes="title" css:theme=".x" css:content="p"/>', th, ct)
  t.match(out, '<div class="x" id="header">x</div>')
})

t.test('issue 14: content-side replace, before and after with inline markup modify the content before it is placed', async t => {
  const th = themeBody('<div id="x">x</div><div id="y">y</div>')
  const ct = '<body><div id="c"><p class="old">Old</p><p id="keep">Keep</p><span>s</span></div><i id="raw"><p class="old">R</p></i></body>'
  const rules = `<replace css:content="#c p.old"><p class="new">New</p></replace>
    <before css:content="#keep"><hr/></before>
    <after css:content="#keep"><em>1</em></after><after content="//p[@id='keep']"><em>2</em></after>
    <replace css:content-children="span"><b>in</b></replace>
    <replace css:theme="#x" css:content="#c"/>
    <replace css:theme-children="#y" css:content="#raw" method="raw"/>`
  const out = await themeIt(rules, th, ct)
  t.same(bodyTree(out), body('<div id="c"><p class="new">New</p><hr><p id="keep">Keep</p><em>1</em><em>2</em><span><b>in</b></span></div>' +
    '<div id="y"><i id="raw"><p class="old">R</p></i></div>'), 'method="raw" sees the content untouched')
  const self = await themeIt('<replace css:content="#c"><section>S</section></replace><replace css:theme="#x" css:content="#c"/>', th, ct)
  t.same(bodyTree(self)[0], ['section', {}, ['S']], 'the placed node itself can be replaced')
  const kids = await themeIt('<before css:content-children="#c"><b>first</b></before><after css:content-children="#c"><b>last</b></after><replace css:theme="#x" css:content="#c"/>', th, ct)
  t.same(bodyTree(kids)[0], ['div', { id: 'c' }, [['b', {}, ['first']], ['p', { class: 'old' }, ['Old']], ['p', { id: 'keep' }, ['Keep']], ['span', {}, ['s']], ['b', {}, ['last']]]])
  const cond = '<replace css:content="#keep" if-path="/only"><p>swapped</p></replace><replace css:theme="#x" css:content="#keep"/>'
  t.match(await themeIt(cond, th, ct, { path: '/only' }), '<p>swapped</p>')
  t.match(await themeIt(cond, th, ct, { path: '/other' }), '<p id="keep">Keep</p>')
  // With nothing to put in its place, a content-side replace removes what it matches; before/after add nothing.
  const empty = await themeIt('<replace css:content="#keep"/><replace css:content-children="span"/><after css:content="p.old"/><replace css:theme="#x" css:content="#c"/>', th, ct)
  t.same(bodyTree(empty)[0], ['div', { id: 'c' }, [['p', { class: 'old' }, ['Old']], ['span', {}, []]]])
})

t.test('issue 14: strip on a content <title> keeps its text', async t => {
  const out = await themeIt('<strip css:content="title"/><replace css:theme-children="title" css:content="title"/>', '<html><head><title>T</title></head><body></body></html>',
    '<html><head><title>Caf\u00e9 &amp; bar</title></head><body></body></html>')
  t.match(out, '<title>Caf\u00e9 &amp; bar</title>')
})

t.test('issue 14: the old diazo+css namespace, and the Deliverance namespace\'s implicit if-content', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const run = async (rules: string, content: string): Promise<string> => {
    const c = await compileMem({ 'rules.xml': rules, 'theme.html': '<body><div id="d">theme</div><div id="e">e</div></body>' })
    const o = transformCompiled(c, content, { path: '/' })
    return o.kind === 'html' ? o.html : o.kind
  }
  const old = await run('<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo+css"><theme href="theme.html"/><replace css:theme="#d" css:content="#a"/></rules>', '<body><i id="a">A</i></body>')
  t.same(bodyTree(old)[0], ['i', { id: 'a' }, ['A']])
  const deliverance = '<rules xmlns="http://openplans.org/deliverance"><theme href="theme.html"/><replace theme="//*[@id=\'d\']" content="//*[@id=\'a\']"/></rules>'
  t.same(bodyTree(await run(deliverance, '<body><b>none</b></body>'))[0], ['div', { id: 'd' }, ['theme']], 'missing content keeps the theme node')
  t.same(bodyTree(await run(deliverance, '<body><i id="a">A</i></body>'))[0], ['i', { id: 'a' }, ['A']])
  const diazo = '<rules xmlns="http://namespaces.plone.org/diazo"><theme href="theme.html"/><replace theme="//*[@id=\'d\']" content="//*[@id=\'a\']"/></rules>'
  t.same(bodyTree(await run(diazo, '<body><b>none</b></body>'))[0], ['div', { id: 'e' }, ['e']], 'Diazo itself removes the node')
})

t.test('issue 14: a relative XPath in a content-side rule matches at any depth', async t => {
  const th = themeBody('<div id="x">x</div>')
  const ct = '<body><main><div class="x">drop me</div><section><p>keep<span>s</span></p></section></main></body>'
  const out = await themeIt(`<drop content="div[@class='x']"/><strip content="p/span | section"/><replace css:theme="#x" css:content="main"/>`, th, ct)
  t.same(bodyTree(out), body('<main><p>keeps</p></main>'))
  const abs = await themeIt('<drop content="/div"/><replace css:theme="#x" css:content="main"/>', th, ct)
  t.match(abs, 'drop me', 'an absolute path is still anchored at the root')
})

t.test('issue 14: notheme still applies content-side drop and strip', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({
    'rules.xml': `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
      <notheme if-path="/plain"/><theme href="theme.html" if-path="/themed"/>
      <drop css:content=".ad"/><strip css:content="span.w"/><drop css:content="#only-x" if-path="/x"/></rules>`,
    'theme.html': '<body>T</body>'
  })
  const page = '<!DOCTYPE html><html><head><title>P</title></head><body><p>a<span class="w">b</span></p><div class="ad">ad</div></body></html>'
  const plain = transformCompiled(c, page, { path: '/plain' })
  t.equal(plain.kind, 'html')
  const html = plain.kind === 'html' ? plain.html : ''
  t.match(html, /^<!DOCTYPE html>/)
  t.same(bodyTree(html), [['p', {}, ['ab']]])
  const other = transformCompiled(c, page, { path: '/other' })
  t.same(bodyTree(other.kind === 'html' ? other.html : ''), [['p', {}, ['ab']]], 'no theme matched: the same')
  t.equal(transformCompiled(c, '<body><p>nothing to drop</p></body>', { path: '/plain' }).kind, 'notheme', 'an untouched page passes through')
})

t.test('issue 14: theme selectors that select comments, text and attributes', async t => {
  const th = '<html><head><!-- head note --><title>T</title></head><body><!-- a --><div id="x" title="tt" lang="en">text<b>b</b></div><!-- b --></body></html>'
  const out = await themeIt('<drop theme="/html/head/comment()"/><drop theme="//div/@title"/><replace theme="/html/body/comment()[2]" css:content="#c"/><before theme="//div/text()" css:content="#c"/>', th,
    '<body><i id="c">C</i></body>')
  t.notMatch(out, 'head note')
  t.same(bodyTree(out), [['<!--a-->'], ['div', { id: 'x', lang: 'en' }, [['i', { id: 'c' }, ['C']], 'text', ['b', {}, ['b']]]], ['i', { id: 'c' }, ['C']]].map(x => x.length === 1 ? x[0] : x))
  const cond = '<drop theme="//div/@title" if-path="/x"/><drop theme="//div/text()" if-path="/x"/>'
  t.match(await themeIt(cond, th, '<body></body>', { path: '/x' }), '<div id="x" lang="en"><b>b</b></div>')
  t.match(await themeIt(cond, th, '<body></body>', { path: '/y' }), '<div id="x" title="tt" lang="en">text<b>b</b></div>')
  await t.rejects(themeIt('<strip theme="//div/text()"/>', th, '<body></body>'), { code: 'LIVERY_ERR_SELECTOR', message: /selects a text node .*only drop, replace, before and after/ })
  await t.rejects(themeIt('<replace theme="//div/@title" css:content="#c"/>', th, '<body></body>'), { code: 'LIVERY_ERR_SELECTOR', message: /selects the attribute @title/ })
})

t.test('issue 14: top-level xsl:variable / xsl:param with literal values are constant parameters; xsl:output is ignored', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({
    'rules.xml': `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
      <xsl:output method="html" indent="no"/><xsl:strip-space elements="*"/>
      <theme href="theme.html"/>
      <drop css:theme="#a" if="$section = 'news'"/>
      <drop css:theme="#b" if="$mode = 'dark'"/>
      <drop css:theme="#c" if="$limit &gt; 2"/>
      <drop theme="//div[@id=$target]"/>
      <xsl:variable name="section" select="'news'"/>
      <xsl:variable name="target">d</xsl:variable>
      <xsl:variable name="limit" select="1 + 2"/>
      <xsl:param name="mode" select="'light'"/>
    </rules>`,
    'theme.html': '<body><div id="a">a</div><div id="b">b</div><div id="c">c</div><div id="d">d</div><div id="e">e</div></body>'
  })
  const run = (params: Record<string, string>): string => { const o = transformCompiled(c, '<p></p>', { path: '/', params }); return o.kind === 'html' ? o.html : '' }
  t.same(bodyTree(run({})), body('<div id="b">b</div><div id="e">e</div>'))
  t.same(bodyTree(run({ mode: 'dark', section: 'other' })), body('<div id="e">e</div>'), 'a param default yields to the request; a variable does not')
})

t.test('issue 14: real XSLT in a rules file stays a clear compile error', async t => {
  const { compileMem } = await import('./helpers.ts')
  const wrap = (x: string): string => `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><theme href="theme.html"/>\n${x}</rules>`
  const bad = async (x: string, re: RegExp): Promise<void> => {
    await t.rejects(compileMem({ 'rules.xml': wrap(x), 'theme.html': '<body></body>' }), { code: 'LIVERY_ERR_RULES', message: re })
  }
  await bad('<xsl:template match="/"/>', /rules\.xml:2: <xsl:template match="\/">: <xsl:template> is XSLT Livery does not run: at the top level/)
  await bad('<xsl:variable name="x"><b>x</b></xsl:variable>', /content must be text/)
  await bad('<xsl:variable name="x" select="$nope"/>', /undeclared variable \$nope/)
  await bad('<rules><xsl:variable name="x" select="1"/></rules>', /only supported at the top level/)
})

t.test('issue 14: ESI/SSI includes keep the href as written, carry the content filter, and ssiwait waits', async t => {
  const th = themeBody('<div id="a"></div><div id="b"></div><div id="c"></div><div id="d"></div>')
  const out = await themeIt(`<replace css:theme="#a" css:content="#something" href="extra.html" method="esi"/>
    <replace css:theme-children="#b" content="//div[@class='x']" href="/portlets?x=1" method="ssi"/>
    <replace css:theme="#c" href="fragment.html" method="ssiwait"/>
    <replace css:theme="#d" css:content-children="#box" href="box.html" method="esi"/>`, th, '<body></body>')
  t.match(out, `<esi:include src="extra.html?;filter_xpath=//*[@id%20=%20'something']"></esi:include>`)
  t.match(out, `<div id="b"><!--#include  virtual="/portlets?x=1&;filter_xpath=//div[@class='x']"--></div>`)
  t.match(out, '<!--#include  virtual="fragment.html" wait="yes"-->')
  t.match(out, `<esi:include src="box.html?;filter_xpath=//*[@id%20=%20'box']/node()"></esi:include>`)
  t.notMatch(out, 'file:')
  await t.rejects(themeIt('<replace css:theme="#a" css:content="a:hover" href="x.html" method="esi"/>', th, '<body></body>'),
    { code: 'LIVERY_ERR_RULES', message: /cannot be sent as an XPath filter/ })
})

t.test('issue 14: Diazo 2 *-content rules move content (or inline markup) within the content', async t => {
  const th = themeBody('<div id="x">x</div>')
  const ct = '<body><article id="main"><div id="old">old</div><h3>Sub</h3><p>text</p><ul id="list"><li>1</li></ul></article>' +
    '<aside id="meta"><h2 class="t">Title</h2><time>today</time><em class="by">me</em><b class="gone">g</b></aside></body>'
  const rules = `<drop css:content=".gone"/>
    <replace-content css:to-content="#old" css:content="#meta h2"/>
    <before-content css:to-content="h3" css:content="#meta time"/>
    <after-content to-content="p" css:content="#meta em"/>
    <prepend-content css:to-content="#list"><li>0</li></prepend-content>
    <append-content css:to-content="#list" css:content-children="#meta"/>
    <replace css:theme="#x" css:content="#main"/>`
  t.same(bodyTree(await themeIt(rules, th, ct)), body('<article id="main"><h2 class="t">Title</h2><time>today</time><h3>Sub</h3><p>text</p><em class="by">me</em>' +
    '<ul id="list"><li>0</li><li>1</li><h2 class="t">Title</h2><time>today</time><em class="by">me</em></ul></article>'), 'the copied content has the content drops applied')
  const cond = '<replace-content css:to-content="#old" css:content="#meta time" css:if-content="#flag"/><replace css:theme="#x" css:content="#main"/>'
  t.match(await themeIt(cond, th, ct), '<div id="old">old</div>')
  t.match(await themeIt(cond, th, ct.replace('<h3>', '<i id="flag"></i><h3>')), '<time>today</time><i id="flag">')
  const extra = { 'extra.html': '<html><body><div id="portlet">From elsewhere</div></body></html>' }
  const { compileMem, rulesXml } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({ 'rules.xml': rulesXml('<after-content css:to-content="h3" css:content="#portlet" href="extra.html"/><replace css:theme="#x" css:content="#main"/>'), 'theme.html': th, ...extra })
  const o = transformCompiled(c, ct, { path: '/', hrefBodies: { 'file:///mem/extra.html': extra['extra.html'] } })
  t.match(o.kind === 'html' ? o.html : '', '<h3>Sub</h3><div id="portlet">From elsewhere</div>')
  await t.rejects(themeIt('<replace-content css:content="#meta"/>', th, ct), { code: 'LIVERY_ERR_RULES', message: /needs a to-content/ })
})

t.test('issue 14: an unconditional theme is the fallback even when it comes first', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({
    'rules.xml': `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
      <theme href="plain.html"/><theme href="news.html" css:if-content="body.news"/></rules>`,
    'plain.html': '<body><p>plain</p></body>',
    'news.html': '<body><p>news</p></body>'
  })
  const run = (html: string): string => { const o = transformCompiled(c, html, { path: '/' }); return o.kind === 'html' ? o.html : o.kind }
  t.match(run('<body class="news"></body>'), '<p>news</p>')
  t.match(run('<body></body>'), '<p>plain</p>')
})

t.test('issue 14: <include> inside inline markup copies content nodes, untouched by content drops', async t => {
  const th = themeBody('<div id="x">x</div><div id="y">y</div>')
  const ct = '<body><section id="s"><h2>Head</h2></section><div id="box"><span id="moved">M</span></div><ul id="l"><li>a</li><li>b</li></ul></body>'
  const rules = `<after css:content-children="#s"><hr/><include css:content="#moved"/></after>
    <drop css:content="#box #moved"/>
    <replace css:theme="#x" css:content="#s"/>
    <replace css:theme-children="#y"><ol><include content-children="//ul[@id='l']"/></ol></replace>`
  t.same(bodyTree(await themeIt(rules, th, ct)), body('<section id="s"><h2>Head</h2><hr><span id="moved">M</span></section><div id="y"><ol><li>a</li><li>b</li></ol></div>'))
  await t.rejects(themeIt('<replace css:theme="#x"><include/></replace>', th, ct), { code: 'LIVERY_ERR_RULES', message: /<include> needs one content/ })
  const conditional = await themeIt('<replace css:theme-children="#y"><include css:content="h2" if="true()"/><include css:content="#moved" css:if-content="#absent"/></replace>', th, ct)
  t.same(bodyTree(conditional)[1], ['div', { id: 'y' }, [['h2', {}, ['Head']]]], 'an include carries its own conditions')
})

t.test('issue 14: strip with theme-children / content-children strips the children, not the node', async t => {
  const th = themeBody('<div id="x"><p><b>one</b></p><p>two</p></div><div id="y">y</div>')
  const ct = '<body><section id="s"><div><i>a</i></div><div>b</div></section></body>'
  const out = await themeIt('<strip css:theme-children="#x"/><strip css:content-children="#s"/><replace css:theme="#y" css:content="#s"/>', th, ct)
  t.same(bodyTree(out), body('<div id="x"><b>one</b>two</div><section id="s"><i>a</i>b</section>'))
  const cond = await themeIt('<strip css:theme-children="#x" if-path="/s"/>', th, '<body></body>', { path: '/s' })
  t.same(bodyTree(cond)[0], ['div', { id: 'x' }, [['b', {}, ['one']], 'two']])
})

t.test('issue 14: attribute nodes copied into an element set its attributes, as xsl:copy-of does', async t => {
  const th = themeBody('<div id="x" class="t">x</div><div id="y"></div><p id="z">z</p>')
  const ct = '<body class="section-news" dir="rtl"><h1 title="T">H</h1></body>'
  const out = await themeIt(`<prepend css:theme="#x" content="/html/body/@class"/>
    <replace css:theme-children="#y" content="//h1/@title"/>
    <after css:theme="#z" content="/html/body/@dir"/>`, th, ct)
  t.same(bodyTree(out), body('<div id="x" class="section-news">x</div><div id="y" title="T"></div><p id="z">z</p>'),
    'prepend sets class; an attribute outside any element is lost')
  const late = await themeIt('<append css:theme="#x" content="/html/body/@class"/>', th, ct)
  t.same(bodyTree(late)[0], ['div', { id: 'x', class: 't' }, ['x']], 'after the element has children, an attribute is lost')
})

t.test('issue 14: the old raw="true" spelling of method="raw"', async t => {
  const th = themeBody('<div id="m"></div><div id="t"></div>')
  const ct = '<body><div class="msg">top</div><div id="src"><div class="msg">inside</div><p>foo</p></div></body>'
  const out = await themeIt('<replace css:theme="#m" css:content=".msg" raw="true"/><drop css:content="#src .msg"/><replace css:theme="#t" css:content="#src"/>', th, ct)
  t.same(bodyTree(out), body('<div class="msg">top</div><div class="msg">inside</div><div id="src"><p>foo</p></div>'))
})

t.test('issue 14: a top-level xsl:variable computed from the content page (select= or css:select=)', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({
    'rules.xml': `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
      <xsl:variable name="special" css:select="body.special"/>
      <xsl:variable name="section" select="string(/html/body/@data-section)"/>
      <theme href="a.html" if-content="$special"/>
      <theme href="b.html" if-content="not($special)"/>
      <drop css:theme="#news" if="$section != 'news'"/>
    </rules>`,
    'a.html': '<body><p>A</p><div id="news">N</div></body>',
    'b.html': '<body><p>B</p><div id="news">N</div></body>'
  })
  const run = (html: string): string => { const o = transformCompiled(c, html, { path: '/' }); return o.kind === 'html' ? o.html : o.kind }
  t.same(bodyTree(run('<html><body class="special" data-section="news"></body></html>')), body('<p>A</p><div id="news">N</div>'))
  t.same(bodyTree(run('<html><body data-section="other"></body></html>')), body('<p>B</p>'))
})

t.test('issue 14: theme rules see the content that *-content rules produced (insert is append-content)', async t => {
  const th = themeBody('<nav id="n"></nav><div id="x"></div>')
  const ct = '<body><div id="head">Head:</div><h2>Sub</h2><p>text</p></body>'
  const out = await themeIt('<insert css:to-content="#head" css:content="h2"/><copy css:theme="#n" css:content="h2"/><replace css:theme="#x" css:content="#head"/>', th, ct)
  t.same(bodyTree(out), body('<nav id="n"><h2>Sub</h2><h2>Sub</h2></nav><div id="head">Head:<h2>Sub</h2></div>'), 'both the original and the copy are content now')
  const { compileMem, rulesXml } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({ 'rules.xml': rulesXml('<notheme/><before-content css:to-content="p" css:content="h2"/>'), 'theme.html': th })
  const o = transformCompiled(c, ct, { path: '/' })
  t.same(o.kind === 'html' ? bodyTree(o.html) : o.kind, body('<div id="head">Head:</div><h2>Sub</h2><h2>Sub</h2><p>text</p>'), 'an unthemed page gets them too')
})
