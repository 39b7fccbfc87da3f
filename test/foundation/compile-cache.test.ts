// Issue 15 (memory): Node's TypeScript stripper holds 25-30 MB of RSS once loaded (an idle gateway 112 MB against 87 MB
// without it). bin/livery.js turns on Node's compile cache, so a start after the first, and every cluster worker, loads
// Livery's modules without the stripper.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { startCliGateway } from '../helpers/cli-gateway.ts'
import { startUpstream } from '../helpers/servers.ts'

const run = promisify(execFile)
const bin = fileURLToPath(new URL('../../bin/livery.js', import.meta.url))
const preload = fileURLToPath(new URL('./fixtures/report-stripper.mjs', import.meta.url))

interface Report { primary: boolean, stripper: boolean }

function reports (dir: string): Report[] {
  return readdirSync(dir).map(f => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Report)
}

/** The environment of a production start: tap's coverage variable removed (bin/livery.js leaves the cache off under coverage). */
function childEnv (extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra }
  // Either variable would turn the cache on by itself: the test is that bin/livery.js does.
  delete env.NODE_V8_COVERAGE
  delete env.NODE_COMPILE_CACHE
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k]
  return env
}

/** `livery --version` with `tmp` as the OS temp directory, where Node keeps the cache by default: `tmp/node-compile-cache`. */
async function version (tmp: string, reportDir: string, extra: NodeJS.ProcessEnv = {}): Promise<Report> {
  mkdirSync(reportDir)
  const { stdout } = await run(process.execPath, ['--import', preload, bin, '--version'], { env: childEnv({ TMPDIR: tmp, STRIPPER_REPORT_DIR: reportDir, ...extra }) })
  t.match(stdout, /^\d+\.\d+/, 'livery --version answered')
  const [report] = reports(reportDir)
  return report
}

t.test('the second start of livery loads its modules from the compile cache, without the type stripper', async t => {
  const dir = t.testdir()
  t.equal((await version(dir, join(dir, 'r1'))).stripper, true, 'the first start strips the types')
  t.ok(readdirSync(join(dir, 'node-compile-cache')).length > 0, 'and fills the compile cache in the OS temp directory')
  t.equal((await version(dir, join(dir, 'r2'))).stripper, false, 'the second start does not load the stripper')
})

t.test('NODE_DISABLE_COMPILE_CACHE=1 turns the cache off', async t => {
  const dir = t.testdir()
  t.equal((await version(dir, join(dir, 'r1'), { NODE_DISABLE_COMPILE_CACHE: '1' })).stripper, true, 'the first start strips the types')
  t.equal((await version(dir, join(dir, 'r2'), { NODE_DISABLE_COMPILE_CACHE: '1' })).stripper, true, 'and so does the second')
})

t.test('on a first start, the cluster workers load the modules the primary compiled, without the stripper', async t => {
  const dir = t.testdir()
  const reportDir = join(dir, 'reports')
  mkdirSync(reportDir)
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }).end('page') })
  const gw = await startCliGateway(t, dir, 'cc', [
    'listen: { host: 127.0.0.1, port: 0 }',
    'processes: 2',
    'shutdownTimeout: 1s',
    'sites:',
    `  - { name: site, hosts: ["*"], upstream: ${JSON.stringify(upstream.url)} }`,
  ], 2, { env: { TMPDIR: dir, STRIPPER_REPORT_DIR: reportDir, NODE_V8_COVERAGE: undefined, NODE_COMPILE_CACHE: undefined }, nodeArgs: ['--import', preload] })
  t.equal((await gw.request('/')).status, 200, 'the gateway serves')
  await gw.stop()
  const all = reports(reportDir)
  t.same(all.filter(r => r.primary).map(r => r.stripper), [true], 'the primary stripped the types')
  t.same(all.filter(r => !r.primary).map(r => r.stripper), [false, false], 'neither worker loaded the stripper')
})
