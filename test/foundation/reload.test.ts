// Issue 16: SIGHUP (and `livery reload`) applies a new configuration and
// re-reads the rules files without dropping a connection, as `nginx -s
// reload` does; an invalid configuration leaves the old one running and
// logs every problem; in cluster mode the primary passes the signal on.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import { LiveryProcess, type LogLine } from '../helpers/livery-process.ts'
import { startUpstream, type Teardown } from '../helpers/servers.ts'
import { runCli } from '../helpers/cli.ts'

const rules = (theme: string): string => `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="${theme}" /><replace css:theme="#main" css:content="#content" /></rules>`

interface Got { status: number, body: string, reused: boolean }

function get (port: number, path: string, agent: Agent): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent }, res => {
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }))
    })
    req.on('error', reject)
    req.end()
  })
}

async function backends (t: Teardown): Promise<{ a: string, b: string, theme: string, slowArrived: Promise<void>, releaseSlow: () => void }> {
  let releaseSlow = (): void => {}
  let arrived = (): void => {}
  const slowArrived = new Promise<void>(resolve => { arrived = resolve })
  const page = (name: string) => (req: IncomingMessage, res: ServerResponse): void => {
    const send = (): void => { res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' }).end(`<html><body><div id="content">from ${name}</div></body></html>`) }
    if (req.url === '/slow') {
      releaseSlow = send
      arrived()
    } else send()
  }
  const [a, b, theme] = await Promise.all([
    startUpstream(t, page('A')),
    startUpstream(t, page('B')),
    startUpstream(t, (req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<html><body><p id="theme">theme ${req.url === '/two.html' ? 'two' : 'one'}</p><div id="main"></div></body></html>`)
    }),
  ])
  return { a: a.url, b: b.url, theme: theme.url, slowArrived, releaseSlow: () => releaseSlow() }
}

const reloaded = (l: LogLine): boolean => l.msg === 'configuration reloaded'

/**
 * Waits until every process that serves has logged its reload: with the
 * default process count there is one per core, and a keep-alive connection
 * may belong to the one that reloads last.
 */
function everyProcessReloaded (gw: LiveryProcess): Promise<LogLine> {
  const pids = new Set(gw.lines.filter(l => l.msg === 'livery is listening').map(l => l.pid))
  return gw.waitForLine(() => [...pids].every(pid => gw.lines.some(l => reloaded(l) && l.pid === pid)), 'every process to reload')
}

t.test('SIGHUP reloads config and rules with requests in flight and keep-alive connections open', async t => {
  const up = await backends(t)
  const dir = t.testdir({ 'one.xml': rules('one.html'), 'two.xml': rules('two.html') })
  const file = join(dir, 'livery.yaml')
  const pidFile = join(dir, 'livery.pid')
  const write = (upstream: string, rulesFile: string, extra = ''): void => writeFileSync(file,
    `listen: { host: 127.0.0.1, port: 0 }\ncache: { directory: ./cache }\n${extra}sites:\n  - name: main\n    upstream: ${upstream}\n    theme: { rules: ./${rulesFile}, base: "${up.theme}/" }\n`)
  write(up.a, 'one.xml')
  const gateway = new LiveryProcess(['serve', '--config', file, '--pid-file', pidFile])
  t.teardown(() => gateway.stop())
  const port = Number((await gateway.waitForLine(l => l.msg === 'livery is listening')).port)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())

  const before = await get(port, '/', agent)
  t.match(before.body, /theme one[\s\S]*from A/, 'old upstream, old rules')

  // A request in flight across the reload, on a connection of its own.
  const slowAgent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => slowAgent.destroy())
  const slow = get(port, '/slow', slowAgent)
  await up.slowArrived

  write(up.b, 'two.xml')
  // The operator's command: validate the file, then signal the pid in the pid file.
  const cli = await runCli(['reload', '--pid-file', pidFile, '--config', file])
  t.equal(cli.code, 0, cli.stderr)
  t.match(cli.stdout, `asked process ${gateway.pid} to reload`)
  await everyProcessReloaded(gateway)

  const after = await get(port, '/', agent)
  t.ok(after.reused, 'the same keep-alive connection carries on')
  t.match(after.body, /theme two[\s\S]*from B/, 'new upstream, and the changed rules file is read again')
  up.releaseSlow()
  const finished = await slow
  t.equal(finished.status, 200, 'the in-flight request finished')
  t.match(finished.body, /from A/, 'on the configuration it started with')

  // An invalid configuration: every problem logged, the old one keeps serving.
  writeFileSync(file, `lisen: {}\npool: { maxConcurrent: many }\nsites:\n  - name: main\n    upstream: ${up.a}\n`)
  const refusedAt = gateway.lines.length
  process.kill(gateway.pid, 'SIGHUP')
  await gateway.waitForLine(l => gateway.lines.indexOf(l) >= refusedAt && l.msg === 'reload refused: the previous configuration keeps running')
  const problems = gateway.lines.slice(refusedAt).filter(l => typeof l.problem === 'string').map(l => String(l.problem))
  t.match(problems, [/^lisen: unknown key/, /^pool\.maxConcurrent: "many"/], 'each problem on its own line')
  const still = await get(port, '/', agent)
  t.ok(still.reused)
  t.match(still.body, /theme two[\s\S]*from B/, 'the previous configuration still serves')

  // Rules that do not compile are refused the same way.
  writeFileSync(join(dir, 'two.xml'), '<rules xmlns="http://namespaces.plone.org/diazo"><replace css:theme="#x"')
  write(up.a, 'two.xml')
  const badRulesAt = gateway.lines.length
  process.kill(gateway.pid, 'SIGHUP')
  await gateway.waitForLine(l => gateway.lines.indexOf(l) >= badRulesAt && l.msg === 'reload refused: the previous configuration keeps running')
  t.match((await get(port, '/', agent)).body, /theme two[\s\S]*from B/, 'bad rules: the old layer keeps serving')

  t.equal(await gateway.stop(), 0, 'and it still drains and exits 0 on SIGTERM')
})

t.test('cluster mode: the primary passes SIGHUP to every worker', async t => {
  const up = await backends(t)
  const dir = t.testdir({ 'one.xml': rules('one.html') })
  const file = join(dir, 'livery.yaml')
  const write = (upstream: string): void => writeFileSync(file,
    `listen: { host: 127.0.0.1, port: 0 }\nprocesses: 2\nthreads: 1\ncache: { directory: ./cache }\nsites:\n  - name: main\n    upstream: ${upstream}\n`)
  write(up.a)
  const primary = new LiveryProcess(['serve', '--config', file])
  t.teardown(() => primary.stop())
  const listening = await Promise.all([0, 1].map(i => primary.waitForLine(l => l.msg === 'livery is listening' && primary.lines.filter(m => m.msg === 'livery is listening').indexOf(l) === i)))
  // Port 0 in cluster mode: each worker gets its own port; ask each one.
  const ports = listening.map(l => Number(l.port))
  write(up.b)
  process.kill(primary.pid, 'SIGHUP')
  const workers = new Set(listening.map(l => l.pid))
  await Promise.all([...workers].map(pid => primary.waitForLine(l => reloaded(l) && l.pid === pid, `worker ${String(pid)} reloading`)))
  for (const port of ports) {
    const agent = new Agent({ keepAlive: false })
    t.match((await get(port, '/', agent)).body, /from B/, 'every worker serves the new upstream')
  }
  const code = once(primary.child, 'exit')
  t.equal(await primary.stop(), 0)
  await code
})

t.test('watch: true picks up a changed rules file without a signal', async t => {
  const up = await backends(t)
  const dir = t.testdir({ 'rules.xml': rules('one.html') })
  const file = join(dir, 'livery.yaml')
  writeFileSync(file, `listen: { host: 127.0.0.1, port: 0 }\nwatch: true\ncache: { directory: ./cache }\nsites:\n  - name: main\n    upstream: ${up.a}\n    theme: { rules: ./rules.xml, base: "${up.theme}/" }\n`)
  const gateway = new LiveryProcess(['serve', '--config', file])
  t.teardown(() => gateway.stop())
  const port = Number((await gateway.waitForLine(l => l.msg === 'livery is listening')).port)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  t.match((await get(port, '/', agent)).body, /theme one/)
  // As an editor saves: a new file renamed over the old one.
  writeFileSync(join(dir, 'rules.xml.tmp'), rules('two.html'))
  const { renameSync } = await import('node:fs')
  renameSync(join(dir, 'rules.xml.tmp'), join(dir, 'rules.xml'))
  await gateway.waitForLine(l => l.msg === 'a watched file changed')
  await gateway.waitForLine(reloaded, 'the reload')
  t.match((await get(port, '/', agent)).body, /theme two/, 'the new rules apply')
})
