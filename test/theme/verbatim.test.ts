/**
 * The transform copies unmodified content subtrees from the source text
 * (parse.ts marks them `verbatim`). These tests pin down when it may and
 * may not, by looking at the exact output and at its parsed tree.
 */
import t from 'tap'
import { bodyTree, themeIt } from './helpers.ts'

const THEME = '<!DOCTYPE html><html><head><title>t</title></head><body><div id="main"></div><footer id="foot">f</footer></body></html>'

t.test('an unmodified subtree is copied from the source, entities and all', async t => {
  const content = '<body><main id="content"><p class=lead title=\'a &quot;q&quot;\'>a &amp; b &copy; &#233; caf\u00e9</p><br></main></body>'
  const out = await themeIt('<replace css:theme="#main" css:content="#content"/>', THEME, content)
  t.ok(out.includes(`<main id="content"><p class=lead title='a &quot;q&quot;'>a &amp; b &copy; &#233; caf\u00e9</p><br></main>`), 'source text as written')
  t.same(bodyTree(out)[0], ['main', { id: 'content' }, [['p', { class: 'lead', title: 'a "q"' }, ['a & b \u00a9 \u00e9 caf\u00e9']], ['br', {}, []]]])
})

t.test('a node with a dropped descendant is re-serialised, its untouched children are still copied', async t => {
  const content = '<body><main id="content"><div class="item"><p>x &copy;</p><span class="hidden">secret</span><p>y</p></div><p class=z>&amp;</p></main></body>'
  const out = await themeIt('<replace css:theme="#main" css:content="#content"/><drop css:content=".hidden"/>', THEME, content)
  t.notOk(out.includes('secret'), 'the dropped node is gone')
  t.ok(out.includes('<main id="content"><div class="item"><p>x &copy;</p><p>y</p></div><p class=z>&amp;</p></main>'), 'ancestors rebuilt, siblings copied')
  t.same(bodyTree(out)[0], ['main', { id: 'content' }, [['div', { class: 'item' }, [['p', {}, ['x \u00a9']], ['p', {}, ['y']]]], ['p', { class: 'z' }, ['&']]]])
})

t.test('strip and attribute drops on content are honoured inside otherwise copied subtrees', async t => {
  const content = '<body><main id="content"><div><b class="s">bold</b><a href="/x" onclick="evil()">l</a></div></main></body>'
  const out = await themeIt(`<replace css:theme="#main" css:content="#content"/><strip css:content="b.s"/>
    <drop css:content="a" attributes="onclick"/>`, THEME, content)
  t.same(bodyTree(out)[0], ['main', { id: 'content' }, [['div', {}, ['bold', ['a', { href: '/x' }, ['l']]]]]])
})

t.test('implicitly closed or unusual markup is re-serialised, so it cannot swallow the theme', async t => {
  const cases = [
    '<body><main id="content"><div><p>one<p>two</main></body>',
    '<body><main id="content"><div>unclosed</main></body>',
    '<body><main id="content"><span>a</div>b</span></main></body>',
    '<body><main id="content"><p>a < b &amp c</p><textarea>x</main></body>',
    '<body><main id="content"><title>x</title><!--a--!>b--><svg><![CDATA[z]]></svg></main></body>'
  ]
  for (const content of cases) {
    const out = await themeIt('<replace css:theme="#main" css:content="#content"/>', THEME, content)
    const body = bodyTree(out)
    t.same(body[body.length - 1], ['footer', { id: 'foot' }, ['f']], `theme footer intact for ${content}`)
  }
})

t.test('copied text never runs into the theme markup that follows it', async t => {
  // Written raw, "AT&" followed by the theme's "amp;T" would read back as "AT&T"; and "1 <" before "b>" as a tag.
  const theme = '<html><body><div id="a"></div>amp;T<div id="b"></div>b> c</body></html>'
  const out = await themeIt(`<replace css:theme="#a" css:content-children="#x"/>
    <replace css:theme="#b" css:content-children="#y"/>`, theme, '<body><p id="x">AT&</p><p id="y">1 <</p></body>')
  t.same(bodyTree(out), ['AT&amp;T1 <b> c'])
})

t.test('method="raw" copies the unmodified source even when drops apply elsewhere', async t => {
  const content = '<body><main id="content"><p class="hidden">kept &amp; raw</p></main></body>'
  const out = await themeIt('<replace css:theme="#main" css:content="#content" method="raw"/><drop css:content=".hidden"/>', THEME, content)
  t.ok(out.includes('<p class="hidden">kept &amp; raw</p>'))
})
