// Issue 16: a port already in use or a cache directory that cannot be
// written is one line naming the problem and exit 2, not a stack trace and
// exit 1. Real `livery serve` processes, as an operator starts them.
import t from 'tap'
import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { once } from 'node:events'

const bin = new URL('../../bin/livery.js', import.meta.url).pathname

interface Run { code: number | null, stderr: string, stdout: string }

/** Runs `livery serve`; as an unprivileged user when this test runs as root. */
async function serve (config: string, opts: { unprivileged?: boolean } = {}): Promise<Run> {
  const drop = opts.unprivileged === true && process.getuid?.() === 0
  const argv = [process.execPath, '--expose-gc', bin, 'serve', '--config', config]
  // `env -u`: tap puts its coverage hooks in NODE_OPTIONS of every child, and
  // they would write into the root-owned .tap folder.
  const child = drop
    ? spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', '-u', 'NODE_OPTIONS', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  let stdout = ''
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c })
  const [code] = await once(child, 'close') as [number | null]
  return { code, stderr, stdout }
}

function configFile (dir: string, name: string, body: string): string {
  const file = join(dir, name)
  writeFileSync(file, body)
  return file
}

t.test('a port already in use', async t => {
  const holder = createServer()
  await new Promise<void>(resolve => holder.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { holder.close() })
  const port = (holder.address() as AddressInfo).port
  const dir = t.testdir({})
  const site = 'sites: [{ name: a, upstream: "http://127.0.0.1:9" }]\n'
  const runs = await Promise.all([1, 2].map(processes =>
    serve(configFile(dir, `p${processes}.yaml`, `listen: { host: 127.0.0.1, port: ${port} }\nprocesses: ${processes}\ncache: { directory: ./cache }\n${site}`))))
  for (const [i, run] of runs.entries()) {
    const processes = i + 1
    t.equal(run.code, 2, `exit 2 (processes: ${processes})`)
    t.equal(run.stderr, `livery: cannot listen on 127.0.0.1:${port}: the port is already in use (another Livery or server runs there: stop it, or set listen.port / --port)\n`, 'one line naming the problem')
    t.notMatch(run.stdout + run.stderr, /\n\s+at /, 'no stack trace')
  }
})

t.test('a cache directory that cannot be written', async t => {
  const dir = t.testdir({ 'not-a-dir': 'a file' })
  const locked = join(dir, 'locked')
  mkdirSync(locked)
  // Root-owned and not writable by others; a non-root test run locks it for itself.
  if (process.getuid?.() !== 0) chmodSync(locked, 0o555)
  chmodSync(dir, 0o755)
  const site = 'listen: { host: 127.0.0.1, port: 0 }\nsites: [{ name: a, upstream: "http://127.0.0.1:9" }]\n'
  const [denied, notDir] = await Promise.all([
    serve(configFile(dir, 'denied.yaml', `cache: { directory: ./locked/cache }\n${site}`), { unprivileged: true }),
    serve(configFile(dir, 'file.yaml', `cache: { directory: ./not-a-dir/cache }\n${site}`)),
  ])
  t.equal(denied.code, 2, 'exit 2')
  t.match(denied.stderr, /^livery: cache directory \S+\/locked\/cache cannot be written: permission denied for uid \d+: make it writable by that user, or set cache\.directory \(LIVERY_CACHE_DIRECTORY\) to a directory it owns\n$/)
  t.notMatch(denied.stdout + denied.stderr, /\n\s+at |EACCES/, 'no stack trace, no raw errno')

  t.equal(notDir.code, 2)
  t.match(notDir.stderr, /^livery: cache directory \S+\/not-a-dir\/cache cannot be written: a part of the path is a file, not a directory\n$/)
})
