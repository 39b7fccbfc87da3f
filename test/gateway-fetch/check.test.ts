// `livery check --config FILE`: fetches and compiles every site's theme.
// Exit 0 with a report when all is well, 1 naming the theme URL and the cause
// when a theme cannot be fetched, 2 for rules that do not compile.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { main } from '../../src/cli.ts'
import { startServer } from '../fetcher/helpers.ts'
import { startThemeServer, tempDir, writeRules } from './fixture.ts'

function sink (): { stream: Writable, text: () => string } {
  const chunks: string[] = []
  return {
    stream: new Writable({ write (chunk: Buffer, _enc, cb) { chunks.push(chunk.toString('utf8')); cb() } }),
    text: () => chunks.join(''),
  }
}

async function check (file: string): Promise<{ code: number, stdout: string, stderr: string }> {
  const out = sink()
  const err = sink()
  const code = await main(['check', '--config', file], { stdout: out.stream, stderr: err.stream, env: {} })
  return { code, stdout: out.text(), stderr: err.text() }
}

function writeConfig (dir: string, themeBase: string, rules = 'rules.xml'): string {
  const file = join(dir, 'livery.yaml')
  writeFileSync(file, `cache:
  directory: ${join(dir, 'cache')}
fetch:
  missWait: 1s
  timeouts: { connect: 1s, total: 2s }
sites:
  - name: checked
    upstream: http://127.0.0.1:1
    theme:
      rules: ${rules}
      base: ${themeBase}
`)
  return file
}

t.test('healthy theme server: exit 0 and a report', async t => {
  const theme = await startThemeServer(t)
  const dir = tempDir(t)
  writeRules(dir)
  const r = await check(writeConfig(dir, `${theme.origin}/`))
  t.equal(r.code, 0, 'exit 0')
  t.equal(r.stderr, '', 'nothing on stderr')
  t.match(r.stdout, `site checked: theme ${theme.origin}/theme.html OK`)
  t.match(r.stdout, /site checked: rules .*rules\.xml compiled/)
  t.match(r.stdout, 'all themes OK')
  t.equal(theme.requests.length, 1, 'the theme was fetched once')
})

t.test('theme server down (refused): exit 1 naming the theme URL and the cause', async t => {
  const gone = await startServer(t, () => {})
  await gone.close()
  const dir = tempDir(t)
  writeRules(dir)
  const r = await check(writeConfig(dir, `${gone.origin}/`))
  t.equal(r.code, 1, 'exit 1')
  t.match(r.stderr, `site checked: theme ${gone.origin}/theme.html cannot be fetched`)
  t.match(r.stderr, /ECONNREFUSED/, `the cause: ${r.stderr.trim()}`)
  t.match(r.stdout, '1 problem(s)')
})

t.test('theme server answering 500: exit 1 naming the theme URL and the status', async t => {
  const theme = await startThemeServer(t, '500')
  const dir = tempDir(t)
  writeRules(dir)
  const r = await check(writeConfig(dir, `${theme.origin}/`))
  t.equal(r.code, 1, 'exit 1')
  t.match(r.stderr, `${theme.origin}/theme.html`)
  t.match(r.stderr, /500/, `the cause: ${r.stderr.trim()}`)
})

t.test('rules that do not compile: exit 2 naming the rules file', async t => {
  const theme = await startThemeServer(t)
  const dir = tempDir(t)
  writeFileSync(join(dir, 'bad.xml'), '<rules xmlns="http://namespaces.plone.org/diazo"><theme href="theme.html"/><replace css:theme="#x"')
  const r = await check(writeConfig(dir, `${theme.origin}/`, 'bad.xml'))
  t.equal(r.code, 2, 'exit 2')
  t.match(r.stderr, 'bad.xml', `the problem: ${r.stderr.trim()}`)
})
