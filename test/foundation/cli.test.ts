// The livery CLI: exit codes 0 / 2 and messages on stderr (issue 2).
import t from 'tap'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { readFileSync } from 'node:fs'
import { runCli } from '../helpers/cli.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const bin = join(root, 'bin/livery.js')
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version

const files = {
  'good.yaml': 'sites:\n  - name: main\n    upstream: http://127.0.0.1:8081\n',
  'bad.yaml': 'sites:\n  - name: main\n    upstream: "htp://x"\n',
  'broken.yaml': 'sites: [\n',
}

t.test('--help and --version exit 0', async t => {
  for (const argv of [['--help'], ['-h'], ['help'], ['serve', '--help'], ['check', '--help']]) {
    const r = await runCli(argv)
    t.equal(r.code, 0, `${argv.join(' ')} → 0`)
    t.match(r.stdout, /Usage:\n\s+livery serve --config FILE/)
    t.equal(r.stderr, '')
  }
  const v = await runCli(['--version'])
  t.equal(v.code, 0)
  t.equal(v.stdout, `${version}\n`)
})

t.test('check: OK config → 0; bad config → 2 naming the key', async t => {
  const dir = t.testdir(files)
  const ok = await runCli(['check', '--config', join(dir, 'good.yaml')])
  t.equal(ok.code, 0)
  t.match(ok.stdout, 'configuration OK: 1 site(s): main')
  const bad = await runCli(['check', '--config', join(dir, 'bad.yaml')])
  t.equal(bad.code, 2)
  t.match(bad.stderr, 'sites[0].upstream: "htp://x" is not an http(s) URL')
  t.equal(bad.stdout, '')
  const broken = await runCli(['check', '--config', join(dir, 'broken.yaml')])
  t.equal(broken.code, 2)
  t.match(broken.stderr, 'not valid YAML')
  const missing = await runCli(['check', '--config', join(dir, 'nope.yaml')])
  t.equal(missing.code, 2)
  t.match(missing.stderr, 'nope.yaml')
  const viaEnv = await runCli(['check'], { LIVERY_CONFIG: join(dir, 'good.yaml') })
  t.equal(viaEnv.code, 0, 'LIVERY_CONFIG names the file')
  const badEnv = await runCli(['check', '--config', join(dir, 'good.yaml')], { LIVERY_FOO: '1' })
  t.equal(badEnv.code, 2)
  t.match(badEnv.stderr, 'LIVERY_FOO: not a configuration variable')
})

t.test('usage errors → 2 with the message on stderr', async t => {
  const dir = t.testdir(files)
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['serve'], /no configuration: give --config FILE/],
    [['serve', '--bogus'], /bogus/],
    [['serve', '--config', join(dir, 'good.yaml'), '--port', 'eighty'], /--port: "eighty" is not a port number/],
    [['check', 'extra-positional'], /extra-positional|positional/i],
    [['serve', '--config', join(dir, 'bad.yaml')], /sites\[0\]\.upstream/],
  ]
  for (const [argv, message] of cases) {
    const r = await runCli(argv)
    t.equal(r.code, 2, `${argv.join(' ')} → 2`)
    t.match(r.stderr, message, `${argv.join(' ')}: message on stderr`)
    t.match(r.stderr, /^livery: /, 'prefixed with the program name')
  }
  const none = await runCli([])
  t.equal(none.code, 2, 'no command is a usage error')
  t.match(none.stderr, /Usage:/, 'no command: the usage goes to stderr, as for every usage error')
})

t.test('bin/livery.js in a child process exits 2 on a config error', async t => {
  const dir = t.testdir(files)
  const child = spawn(process.execPath, [bin, 'check', '--config', join(dir, 'bad.yaml')], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  child.stdout.resume()
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  t.equal(code, 2)
  t.match(stderr, 'livery: invalid configuration')
  t.match(stderr, 'sites[0].upstream: "htp://x" is not an http(s) URL')
})
