import t from 'tap'
import { hasCode } from '../../src/errors.ts'
import { compileMem, NS } from './helpers.ts'

const bad = async (rules: string, extra: Record<string, string> = {}): Promise<Error> => {
  try {
    await compileMem({ 'rules.xml': rules, 'theme.html': '<body><div id="x"></div></body>', ...extra }, { params: ['mode'] })
  } catch (err) { return err as Error }
  throw new Error('expected the rules to be rejected')
}

t.test('bad rules name the file, the line and the rule', async t => {
  const cases: Array<[string, RegExp]> = [
    [`<rules ${NS}>\n<theme href="theme.html"/>\n<replace css:theme="#x" css:content="div:::bad"/>\n</rules>`,
      /^\/mem\/rules\.xml:3: <replace css:theme="#x" css:content="div:::bad">: unsupported selector "div:::bad"/],
    [`<rules ${NS}>\n\n<replace theme="//div[" css:content="p"/></rules>`, /^\/mem\/rules\.xml:3: <replace theme="\/\/div\[" .*unsupported expression "\/\/div\["/],
    [`<rules ${NS}>\n<replace css:theme="#x"/></rules>`, /^\/mem\/rules\.xml:2: <replace css:theme="#x">: needs a content selector, an href or inline markup/],
    [`<rules ${NS}>\n<frobnicate css:theme="#x"/></rules>`, /^\/mem\/rules\.xml:2: <frobnicate .*unknown rule element/],
    [`<rules ${NS}>\n<replace css:theme="#x" css:content="p" colour="red"/></rules>`, /rules\.xml:2: .*unknown attribute "colour"/],
    [`<rules ${NS}>\n<drop css:theme="#x" if="$nope = 1"/></rules>`, /rules\.xml:2: .*undeclared variable \$nope/],
    [`<rules ${NS}>\n<drop css:theme="#x" if="unknownfn(1)"/></rules>`, /rules\.xml:2: .*unsupported function/],
    [`<rules ${NS}>\n<merge css:theme="#x" css:content="p"/></rules>`, /rules\.xml:2: .*needs theme, content and attributes/],
    [`<rules ${NS}>\n<drop/></rules>`, /rules\.xml:2: <drop>: needs exactly one of/],
    [`<rules ${NS}>\n<replace css:theme="#x" css:content="p" method="xslt"/></rules>`, /unsupported method "xslt"/],
    [`<rules ${NS}>\n<replace css:theme="#x" css:content="p" if-content=""/>\n<drop css:theme="#x" if-content=""/></rules>`, /rules\.xml:3: .*empty if-content needs a content selector/],
    [`<rules ${NS} xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n<xsl:template match="x"/></rules>`, /rules\.xml:2: <xsl:template .*<xsl:template> is XSLT Livery does not run/],
    [`<rules ${NS}>\n<replace css:theme="#x">\n<p>unclosed\n</replace></rules>`, /rules\.xml:3: malformed XML: <p> is not closed/],
    [`<notrules/>`, /rules\.xml:1: <notrules>: the root element must be <rules>/],
    [`<rules ${NS}>\n<theme/></rules>`, /rules\.xml:2: <theme>: <theme> needs an href/],
    // issue 14: rules files are XML, so an HTML entity is an error in Diazo too, not text to print.
    [`<rules ${NS}>\n<theme href="theme.html"/>\n<after css:theme-children="#x"><p>a&nbsp;b</p></after></rules>`, /rules\.xml:3: malformed XML: undeclared entity "&nbsp;"/],
    [`<rules ${NS}>\n<drop css:theme="#x" if="1 &lt; 2 & true()"/></rules>`, /rules\.xml:2: malformed XML: a bare "&"/]
  ]
  for (const [xml, re] of cases) {
    const err = await bad(xml)
    t.ok(hasCode(err, 'LIVERY_ERR_RULES'), `${re} has a code`)
    t.match(err.message, re)
  }
})

t.test('errors inside included files name the included file', async t => {
  const err = await bad(`<rules ${NS} xmlns:xi="http://www.w3.org/2001/XInclude">\n<xi:include href="inc.xml"/></rules>`,
    { 'inc.xml': `<rules ${NS}>\n\n\n<drop css:theme="p:bogus"/></rules>` })
  t.match(err.message, /^\/mem\/inc\.xml:4: <drop css:theme="p:bogus">/)
  const missing = await bad(`<rules ${NS} xmlns:xi="http://www.w3.org/2001/XInclude">\n<xi:include href="gone.xml"/></rules>`)
  t.match(missing.message, /^\/mem\/rules\.xml:2: <xi:include href="gone.xml">: cannot read rules file/)
})

t.test('issue 14: entities declared in the rules file\'s DTD expand; XML\'s own and numeric ones always work', async t => {
  const { compileMem } = await import('./helpers.ts')
  const { transformCompiled } = await import('../../src/theme/transform.ts')
  const c = await compileMem({
    'rules.xml': `<?xml version="1.0"?>\n<!DOCTYPE rules [\n<!ENTITY nbsp "&#160;">\n]>\n<rules ${NS}><theme href="theme.html"/>
      <!-- &bogus; in a comment is fine -->
      <after css:theme-children="#x"><p title="&quot;q&quot;">a&nbsp;b&#160;c &amp; d</p></after></rules>`,
    'theme.html': '<body><div id="x"></div></body>'
  })
  const o = transformCompiled(c, '<p></p>', { path: '/' })
  t.match(o.kind === 'html' ? o.html : '', '<p title="&quot;q&quot;">a\u00a0b\u00a0c &amp; d</p>')
})
