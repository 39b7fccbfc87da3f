import t from 'tap'
import { PassThrough } from 'node:stream'
import { join } from 'node:path'
import { runThemeCommand } from '../../src/theme/cli.ts'
import { bodyTree } from './helpers.ts'

async function run (argv: string[]): Promise<{ code: number, out: string, err: string }> {
  const stdout = new PassThrough(); const stderr = new PassThrough()
  let out = ''; let err = ''
  stdout.on('data', (c: Buffer) => { out += c.toString() })
  stderr.on('data', (c: Buffer) => { err += c.toString() })
  const code = await runThemeCommand(argv, { stdout, stderr })
  return { code, out, err }
}

const NS = 'xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css"'

t.test('themes a file with rules, a relative theme, a path and params', async t => {
  const dir = t.testdir({
    'rules.xml': `<rules ${NS}>
  <theme href="themes/t.html"/>
  <replace css:theme-children="#main" css:content="h1"/>
  <drop css:theme="#only-news" if-not-path="/news"/>
  <drop css:theme="#dark" if="$mode = 'dark'"/>
  <replace css:theme="#never" css:content="#absent" if-content=""/>
</rules>`,
    themes: { 't.html': '<html><head><link href="s.css" rel="stylesheet"></head><body><div id="main">x</div><p id="only-news">n</p><p id="dark">d</p><p id="never">keep</p></body></html>' },
    'page.html': '<html><body><h1>Hello</h1></body></html>'
  })
  const r = await run(['--rules', join(dir, 'rules.xml'), '--content', join(dir, 'page.html'), '--path', '/news/1', '--param', 'mode=dark', '--absolute-prefix', '/t'])
  t.equal(r.code, 0, r.err)
  t.same(bodyTree(r.out), bodyTree('<body><div id="main"><h1>Hello</h1></div><p id="only-news">n</p><p id="never">keep</p></body>'))
  t.match(r.out, '<link href="/t/s.css" rel="stylesheet">')
})

t.test('--theme is appended as an unconditional theme', async t => {
  const dir = t.testdir({
    'rules.xml': `<rules ${NS}><theme href="a.html" if-path="/a"/><replace css:theme="#x" css:content="#c"/></rules>`,
    'a.html': '<body><p>A</p><div id="x"></div></body>',
    'b.html': '<body><p>B</p><div id="x"></div></body>',
    'page.html': '<body><i id="c">c</i></body>'
  })
  const a = await run([`--rules=${join(dir, 'rules.xml')}`, '--content', join(dir, 'page.html'), '--theme', join(dir, 'b.html'), '--path', '/a'])
  t.same(bodyTree(a.out), bodyTree('<body><p>A</p><i id="c">c</i></body>'))
  const b = await run(['--rules', join(dir, 'rules.xml'), '--content', join(dir, 'page.html'), '--theme', join(dir, 'b.html'), '--path', '/b'])
  t.same(bodyTree(b.out), bodyTree('<body><p>B</p><i id="c">c</i></body>'))
  const none = await run(['--rules', join(dir, 'rules.xml'), '--content', join(dir, 'page.html'), '--path', '/b'])
  t.equal(none.code, 0)
  t.equal(none.out, '<body><i id="c">c</i></body>', 'no theme: content unchanged')
  t.match(none.err, /no theme applies/)
})

t.test('--trace reports what each rule did and why', async t => {
  const dir = t.testdir({
    'rules.xml': `<rules ${NS}>
<theme href="t.html"/>
<replace css:theme="#a" css:content="#c"/>
<replace css:theme="#missing" css:content="#c"/>
<replace css:theme="#b" css:content="#none"/>
<drop css:theme="#b2" if-path="/other"/>
<replace css:theme="#d" css:content="#c" css:if-content="#c"/>
<replace css:theme="#d" css:content="#c"/>
</rules>`,
    't.html': '<body><div id="a"></div><div id="b"></div><div id="b2"></div><div id="d"></div></body>',
    'page.html': '<body><i id="c">c</i></body>'
  })
  const r = await run(['--rules', join(dir, 'rules.xml'), '--content', join(dir, 'page.html'), '--trace'])
  t.equal(r.code, 0)
  const lines = r.err.split('\n')
  t.match(lines[0], /^theme: file:.*t\.html/)
  t.match(lines[1], /rules\.xml:3: <replace css:theme="#a" css:content="#c">: applied 1x/)
  t.match(lines[2], /rules\.xml:4: .*did nothing: theme selector "#missing" matched no theme element/)
  t.match(lines[3], /rules\.xml:5: .*content matched nothing, so the theme element was removed/)
  t.match(lines[4], /rules\.xml:6: .*did nothing: a condition failed \[if-path="\/other" failed\]/)
  t.match(lines[5], /rules\.xml:7: .*applied 1x \[css:if-content|if-content="#c" held\]/)
  t.match(lines[6], /rules\.xml:8: .*an earlier rule of the same if\/else chain applied/)
})

t.test('bad rules exit 2 with a located message; usage errors exit 2; missing files exit 1', async t => {
  const dir = t.testdir({ 'rules.xml': `<rules ${NS}>\n<theme href="t.html"/>\n<replace css:theme="#a" content="//div[@" />\n</rules>`, 'page.html': '<p>' })
  const bad = await run(['--rules', join(dir, 'rules.xml'), '--content', join(dir, 'page.html')])
  t.equal(bad.code, 2)
  t.match(bad.err, /rules\.xml:3: <replace css:theme="#a" content="\/\/div\[@">: unsupported expression/)
  const usage = await run(['--content', 'x'])
  t.equal(usage.code, 2)
  t.match(usage.err, /--rules is required/)
  t.equal((await run(['--bogus'])).code, 2)
  const help = await run(['--help'])
  t.equal(help.code, 0)
  t.match(help.out, /usage: livery theme/)
  const missing = await run(['--rules', join(dir, 'nope.xml'), '--content', join(dir, 'page.html')])
  t.equal(missing.code, 2, 'an unreadable rules file is a rules error')
  t.match(missing.err, /cannot read rules file/)
})
