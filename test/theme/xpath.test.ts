import t from 'tap'
import { parseDocument } from 'htmlparser2'
import { parseXPath } from '../../src/theme/xpath-parse.ts'
import { selectXPath, stringValue, type XNode } from '../../src/theme/xpath.ts'
import { makeSelector, selectNodes } from '../../src/theme/select.ts'

const doc = parseDocument(`<html><head><title>T</title></head><body>
<div id="a" class="box main"><p>one</p><p>two</p><p class="x">three</p></div>
<div id="b"><span>s</span><p>four</p></div>
<ul><li>1</li><li>2</li><li>3</li></ul></body></html>`)

const names = (ns: XNode[]): string[] => ns.map(n => n.type === 'xattr' ? '@' + n.name : n.type === 'tag' ? `${n.name}${n.attribs.id !== undefined ? '#' + n.attribs.id : ''}` : stringValue(n))
const sel = (x: string, vars: Record<string, string> = {}): string[] => names(selectXPath(parseXPath(x), doc, vars))
const text = (x: string): string[] => selectXPath(parseXPath(x), doc).map(stringValue)

t.test('location paths Diazo rule files use', async t => {
  t.same(sel("//div[@id='a']"), ['div#a'])
  t.same(sel('/html/head/title'), ['title'])
  t.same(text('/html/head/title/text()'), ['T'])
  t.same(text("//*[@class='box main']/p[1]"), ['one'])
  t.same(text('/html/body/div[2]/p'), ['four'])
  t.same(text('//p[position() > 1 and position() < 3]'), ['two'])
  t.same(text('//div/p[last()]'), ['three', 'four'])
  t.same(text("//div[contains(@class, 'main')]/p[@class]"), ['three'])
  t.same(text('//p[1]'), ['one', 'four'], '//p[1] is positional per parent')
  t.same(text('(//p)[1]'), ['one'], 'filter expression position is global')
  t.same(sel("//span | //div[@id='a']"), ['div#a', 'span'], 'unions come back in document order')
  t.same(sel('//div[@id]/@id'), ['@id', '@id'])
  t.same(text('//li[. = 2]'), ['2'])
  t.same(text("//p[not(@class)][starts-with(., 't')]"), ['two'])
  t.same(sel('//span/parent::div'), ['div#b'])
  t.same(sel('//span/..'), ['div#b'])
  t.same(text('//span/following-sibling::p'), ['four'])
  t.same(text('//p[3]/preceding-sibling::p[1]'), ['two'])
  t.same(sel('//p[@class="x"]/ancestor::*'), ['html', 'body', 'div#a'])
  t.same(text('//ul/li[count(preceding-sibling::li) = 1]'), ['2'])
  t.same(text("//li[normalize-space(concat(' ', ., ' ')) = '3']"), ['3'])
  t.same(sel("//div[.//span]"), ['div#b'])
  t.same(sel('//descendant::span'), ['span'])
  t.same(text("//p[substring-after(., 't') = 'wo']"), ['two'])
  t.same(sel('//xhtml:span'), ['span'])
})

t.test('expressions and variables', async t => {
  t.same(sel("//div[$which = 'b' and @id = $which]", { which: 'b' }), ['div#b'])
  t.same(selectXPath(parseXPath('1 + 2 * 3 = 7'), doc).length, 0, 'a boolean is not a node-set')
})

t.test('unsupported expressions are errors, not no-ops', async t => {
  for (const bad of ['//div[', 'foo()', '//a:b', 'namespace::x', '//div]', '', '$']) {
    t.throws(() => parseXPath(bad), bad)
  }
  t.throws(() => makeSelector('css', 'div::nope-pseudo(x'), /unsupported selector/)
  t.throws(() => makeSelector('xpath', '//div[@'), /unsupported expression/)
})

t.test('CSS selectors: level 3 and common level 4', async t => {
  const css = (s: string): string[] => names(selectNodes(makeSelector('css', s), doc, {}))
  t.same(css('div > p:nth-child(2)'), ['p', 'p'])
  t.same(css('div:has(span)'), ['div#b'])
  t.same(css(':is(#a, #b) > p:last-child'), ['p', 'p'])
  t.same(css('p:not(.x):first-of-type'), ['p', 'p'])
  t.same(css('li:nth-of-type(odd)'), ['li', 'li'])
  t.same(css('[class~=main]'), ['div#a'])
})
