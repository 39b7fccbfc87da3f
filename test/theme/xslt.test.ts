import t from 'tap'
import { bodyTree, compileMem, rulesXml, themeIt } from './helpers.ts'
import { hasCode } from '../../src/errors.ts'

const XSL = 'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"'
/** Rules with the xsl prefix bound (a nested <rules> is a plain container). */
const xsl = (rules: string): string => `<rules ${XSL}>${rules}</rules>`
const body = (html: string): ReturnType<typeof bodyTree> => bodyTree(`<body>${html}</body>`)
const themeBody = (inner: string, attrs = ''): string => `<html><head><title>Theme</title></head><body${attrs}>${inner}</body></html>`

const PAGE = `<html><head><title>News &amp; views</title></head><body class="section-news" data-section="news">
<h1 id="title">Headline</h1>
<ul id="nav"><li class="on"><a href="/a" title="A title">Alpha</a></li><li><a href="/b">Beta</a></li><li><a href="/c">Gamma</a></li></ul>
<div id="main"><p>One</p><p class="ad">Ad</p><p>Two</p></div>
</body></html>`

t.test('issue 14: xsl:copy-of (XPath and css:select) and xsl:value-of inside a theme rule', async t => {
  const th = themeBody('<div id="x">placeholder</div>')
  const rules = xsl(`<replace css:theme="#x"><div class="box">
      <xsl:copy-of select="//h1"/>
      <xsl:copy-of css:select="#nav a"/>
      <span><xsl:value-of select="/html/head/title"/></span>
      <em><xsl:value-of select="count(//li)"/></em>
    </div></replace>`)
  t.same(bodyTree(await themeIt(rules, th, PAGE)), body(`<div class="box"><h1 id="title">Headline</h1><a href="/a" title="A title">Alpha</a><a href="/b">Beta</a><a href="/c">Gamma</a><span>News &amp; views</span><em>3</em></div>`))
  // value-of escapes markup-like text, and a copy-of of a string writes it as text.
  const out = await themeIt(xsl('<replace css:theme="#x"><b><xsl:copy-of select="concat(\'&lt;i&gt;\', string(//h1))"/></b></replace>'), th, PAGE)
  t.match(out, '<b>&lt;i&gt;Headline</b>')
})

t.test('issue 14: xsl:apply-templates copies with the content-side rules applied; xsl:copy-of copies untouched', async t => {
  const th = themeBody('<div id="x"></div><div id="y"></div>')
  const rules = xsl(`<drop css:content="p.ad"/>
    <replace css:theme="#x"><section><xsl:apply-templates select="//div[@id='main']/p"/></section></replace>
    <replace css:theme="#y"><section><xsl:copy-of select="//div[@id='main']/p"/></section></replace>`)
  t.same(bodyTree(await themeIt(rules, th, PAGE)), body('<section><p>One</p><p>Two</p></section><section><p>One</p><p class="ad">Ad</p><p>Two</p></section>'))
})

t.test('issue 14: xsl:if, xsl:choose and for-each with relative paths, position() and .', async t => {
  const th = themeBody('<ul id="menu"><li>x</li></ul>')
  const rules = xsl(`<replace css:theme-children="#menu">
      <xsl:for-each select="//ul[@id='nav']/li">
        <li class="item-{position()}">
          <xsl:if test="@class = 'on'"><xsl:attribute name="aria-current">page</xsl:attribute></xsl:if>
          <a href="{a/@href}"><xsl:value-of select="."/></a>
          <xsl:choose>
            <xsl:when test="position() = last()"><xsl:text>(last)</xsl:text></xsl:when>
            <xsl:when test="a/@title"><small><xsl:value-of select="a/@title"/></small></xsl:when>
            <xsl:otherwise><xsl:text>-</xsl:text></xsl:otherwise>
          </xsl:choose>
        </li>
      </xsl:for-each>
    </replace>`)
  t.same(bodyTree(await themeIt(rules, th, PAGE)), body(`<ul id="menu">
    <li class="item-1" aria-current="page"><a href="/a">Alpha</a><small>A title</small></li>
    <li class="item-2"><a href="/b">Beta</a>-</li>
    <li class="item-3"><a href="/c">Gamma</a>(last)</li></ul>`))
  // An xsl:if whose test fails writes nothing; a test may be a CSS selector too.
  const out = await themeIt(xsl('<after css:theme="#menu"><xsl:if test="//table"><b>T</b></xsl:if><xsl:if css:test="li.on"><i>on</i></xsl:if></after>'), th, PAGE)
  t.same(bodyTree(out), body('<ul id="menu"><li>x</li></ul><i>on</i>'))
})

t.test('issue 14: xsl:element, xsl:attribute, attribute value templates and xsl:text', async t => {
  const th = themeBody('<div id="x"></div>', ' class="theme"')
  const rules = xsl(`<replace css:theme="#x">
      <xsl:element name="h{count(//h1) + 1}"><xsl:attribute name="data-from"><xsl:value-of select="//h1/@id"/>-<xsl:text>x</xsl:text></xsl:attribute><xsl:value-of select="//h1"/></xsl:element>
      <a href="/search?s={{q}}&amp;t={//body/@data-section}" title="{//h1}">s</a>
      <xsl:text>  two  spaces  </xsl:text>
    </replace>
    <before css:theme-children="body"><xsl:attribute name="data-section"><xsl:value-of select="//body/@data-section"/></xsl:attribute></before>`)
  const out = await themeIt(rules, th, PAGE)
  t.same(bodyTree(out), body('<h2 data-from="title-x">Headline</h2><a href="/search?s={q}&amp;t=news" title="Headline">s</a>two spaces'))
  t.match(out, '</a>  two  spaces  ', 'xsl:text keeps its whitespace')
  t.match(out, /<body class="theme" data-section="news">/, 'a top-level xsl:attribute in a theme-children rule sets an attribute on the theme element')
})

t.test('issue 14: a content-side rule runs its XSLT with the matched node as context', async t => {
  const th = themeBody('<div id="x"></div>')
  const rules = xsl(`<replace css:content="#nav a"><a href="{@href}?from=nav" class="nav"><xsl:value-of select="translate(., 'abg', 'ABG')"/></a></replace>
    <after css:content="#nav li.on"><li class="sep"><xsl:value-of select="count(../li)"/></li></after>
    <replace css:theme="#x" css:content="#nav"/>`)
  t.same(bodyTree(await themeIt(rules, th, PAGE)), body(`<ul id="nav"><li class="on"><a href="/a?from=nav" class="nav">AlphA</a></li><li class="sep">3</li>
    <li><a href="/b?from=nav" class="nav">BetA</a></li><li><a href="/c?from=nav" class="nav">GAmmA</a></li></ul>`))
})

t.test('issue 14: inline XSLT reads rule variables and keeps conditions and <include>', async t => {
  const th = themeBody('<div id="x"></div>')
  // A top-level variable (the prefix is bound on it: themeIt nests these rules in its own root).
  const rules = `<xsl:variable ${XSL} name="label" select="'Section'"/>
    ${xsl('<replace css:theme="#x" if-path="/news"><p><xsl:value-of select="concat($label, \': \', //body/@data-section, \' \', $path)"/><include css:content="h1"/></p></replace>')}`
  t.same(bodyTree(await themeIt(rules, th, PAGE, { path: '/news' })), body('<p>Section: news /news<h1 id="title">Headline</h1></p>'))
  t.same(bodyTree(await themeIt(rules, th, PAGE, { path: '/other' })), body('<div id="x"></div>'), 'the rule\'s condition still decides')
})

t.test('issue 14: rules without XSLT keep their markup as one precomputed string', async t => {
  const c = await compileMem({ 'rules.xml': rulesXml(xsl('<replace css:theme="#x"><p class="a"> <b>x</b> </p></replace><replace css:theme="#y"><p><xsl:value-of select="1"/></p></replace>')), 'theme.html': themeBody('<i id="x"></i><i id="y"></i>') })
  t.equal(c.rules[0].xsl, null)
  t.equal(c.rules[0].inline, '<p class="a"> <b>x</b> </p>')
  t.not(c.rules[1].xsl, null)
})

t.test('issue 14: unsupported XSLT in a rule is a compile error naming the element', async t => {
  const bad = async (rule: string, re: RegExp): Promise<void> => {
    const err = await compileMem({ 'rules.xml': rulesXml(xsl(rule)), 'theme.html': themeBody('<div id="x"></div>') }).then(() => null, (e: unknown) => e as Error)
    t.ok(err !== null && hasCode(err, 'LIVERY_ERR_RULES'), `${rule} fails with LIVERY_ERR_RULES`)
    t.match(err?.message, re)
  }
  await bad('<replace css:theme="#x"><xsl:call-template name="t"/></replace>', /rules\.xml:\d+: <xsl:call-template name="t">: <xsl:call-template> is XSLT Livery does not run inside a rule/)
  await bad('<replace css:theme="#x"><div><xsl:key name="k" match="a" use="."/></div></replace>', /<xsl:key> is XSLT Livery does not run/)
  await bad('<replace css:theme="#x"><xsl:apply-templates select="//a" mode="m"/></replace>', /mode needs xsl:template/)
  await bad('<replace css:theme="#x"><xsl:for-each select="//a"><xsl:sort select="."/></xsl:for-each></replace>', /xsl:sort is not supported/)
  await bad('<replace css:theme="#x"><xsl:copy-of/></replace>', /<xsl:copy-of> needs select= or css:select=/)
  await bad('<replace css:theme="#x"><xsl:value-of select="$nope"/></replace>', /undeclared variable \$nope/)
  await bad('<replace css:theme="#x"><a href="{//a/@href"/></replace>', /unclosed "\{"/)
  await bad('<replace css:theme="#x"><xsl:choose><xsl:otherwise/><xsl:when test="1"/></xsl:choose></replace>', /xsl:choose holds xsl:when/)
})

t.test('issue 14: two unconditional replace rules on one theme node fail the compile, as in Diazo', async t => {
  const th = themeBody('<div id="x">x</div>')
  for (const rules of ['<replace css:theme="#x" css:content="h1"/><replace theme="//div[@id=\'x\']" css:content="#nav"/>',
    '<copy css:theme="#x" css:content="h1"/><replace css:theme-children="#x" css:content="#nav"/>']) {
    const err = await themeIt(rules, th, PAGE).then(() => null, (e: unknown) => e as Error)
    t.ok(err !== null && hasCode(err, 'LIVERY_ERR_RULES'), 'LIVERY_ERR_RULES')
    t.match(err?.message, /rules\.xml:\d+: <replace .*: a second unconditional rule replaces the same node of .*theme\.html as .*rules\.xml:\d+: <(replace|copy) /)
  }
  // One unconditional and any number of conditional ones stay an if / else chain.
  const ok = '<replace css:theme="#x" css:content="h1"/><replace css:theme="#x" css:content="#nav" if-path="/nav"/><replace css:theme="#x" css:content="#main" if-path="/main"/>'
  t.same(bodyTree(await themeIt(ok, th, PAGE, { path: '/main' })), body('<div id="main"><p>One</p><p class="ad">Ad</p><p>Two</p></div>'))
  t.same(bodyTree(await themeIt(ok, th, PAGE, { path: '/x' })), body('<h1 id="title">Headline</h1>'))
})

t.test('issue 14: of several content-side replace rules on one node, the last whose conditions hold applies (XSLT 1.0 §5.5)', async t => {
  const th = themeBody('<div id="x"></div>')
  const rules = `<replace css:content="h1"><h2>first</h2></replace><replace css:content="h1"><h3>second</h3></replace>
    <replace css:content="h1" if-path="/third"><h4>third</h4></replace><replace css:theme="#x" css:content="h1, h2, h3, h4"/>`
  t.same(bodyTree(await themeIt(rules, th, PAGE)), body('<h3>second</h3>'))
  t.same(bodyTree(await themeIt(rules, th, PAGE, { path: '/third' })), body('<h4>third</h4>'))
})

t.test('issue 14: xsl:copy in a content-side rule rebuilds the matched node (adding an attribute, keeping the rest)', async t => {
  const th = themeBody('<div id="x"></div>')
  const rules = xsl(`<replace css:content="#nav a"><xsl:copy><xsl:attribute name="rel">nofollow</xsl:attribute><xsl:copy-of select="@*"/><xsl:apply-templates/></xsl:copy></replace>
    <replace content="//h1/text()"><xsl:copy/><xsl:text> (updated)</xsl:text></replace>
    <replace css:theme="#x"><xsl:copy-of select="//h1"/><xsl:copy-of select="//ul"/></replace>`)
  t.same(bodyTree(await themeIt(rules, th, PAGE)), body(`<h1 id="title">Headline</h1><ul id="nav"><li class="on"><a href="/a" title="A title">Alpha</a></li>
    <li><a href="/b">Beta</a></li><li><a href="/c">Gamma</a></li></ul>`), 'copy-of copies the content untouched')
  const applied = xsl(`<replace css:content="#nav a"><xsl:copy><xsl:attribute name="rel">nofollow</xsl:attribute><xsl:copy-of select="@*"/><xsl:apply-templates/></xsl:copy></replace>
    <replace content="//h1/text()"><xsl:copy/><xsl:text> (updated)</xsl:text></replace>
    <replace css:theme="#x"><xsl:apply-templates select="//h1 | //ul"/></replace>`)
  t.same(bodyTree(await themeIt(applied, th, PAGE)), body(`<h1 id="title">Headline (updated)</h1><ul id="nav"><li class="on"><a rel="nofollow" href="/a" title="A title">Alpha</a></li>
    <li><a rel="nofollow" href="/b">Beta</a></li><li><a rel="nofollow" href="/c">Gamma</a></li></ul>`), 'apply-templates applies the content-side rules')
})

t.test('issue 14: xsl:apply-templates inside a content-side rule applies the other content-side rules', async t => {
  const th = themeBody('<div id="x"></div>')
  const rules = xsl(`<drop css:content="p.ad"/>
    <replace css:content="p:not(.ad)"><b>p</b></replace>
    <replace css:content="#main"><section class="wrapped"><xsl:apply-templates/></section></replace>
    <replace css:theme="#x" css:content="section, #main"/>`)
  t.same(bodyTree(await themeIt(rules, th, PAGE)), body('<section class="wrapped"><b>p</b><b>p</b></section>'))
})

t.test('issue 14: inline XSLT in a *-content rule runs with each target as context', async t => {
  const th = themeBody('<div id="x"></div>')
  const rules = xsl(`<append-content css:to-content="#nav li"><small><xsl:value-of select="a/@href"/></small></append-content>
    <replace css:theme="#x" css:content="#nav"/>`)
  t.same(bodyTree(await themeIt(rules, th, PAGE)), body(`<ul id="nav"><li class="on"><a href="/a" title="A title">Alpha</a><small>/a</small></li>
    <li><a href="/b">Beta</a><small>/b</small></li><li><a href="/c">Gamma</a><small>/c</small></li></ul>`))
})

t.test('issue 14: a local xsl:variable is visible to what follows it, and only there', async t => {
  const th = themeBody('<ul id="menu"></ul>')
  const rules = xsl(`<replace css:theme-children="#menu"><xsl:variable name="count" select="count(//ul[@id='nav']/li)"/>
      <xsl:for-each select="//ul[@id='nav']/li"><xsl:variable name="label" select="string(a)"/>
        <li title="{$label} of {$count}"><xsl:value-of select="concat($label, '/', $count)"/></li></xsl:for-each></replace>`)
  t.same(bodyTree(await themeIt(rules, th, PAGE)), body('<ul id="menu"><li title="Alpha of 3">Alpha/3</li><li title="Beta of 3">Beta/3</li><li title="Gamma of 3">Gamma/3</li></ul>'))
  const err = await themeIt(xsl('<replace css:theme="#menu"><b><xsl:variable name="v" select="1"/></b><i><xsl:value-of select="$v"/></i></replace>'), th, PAGE).then(() => null, (e: unknown) => e as Error)
  t.match(err?.message, /<xsl:value-of select="\$v">: uses undeclared variable \$v/, 'out of scope after its parent element')
})
