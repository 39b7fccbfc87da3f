// Issue 16: SIGHUP (and `livery reload`) applies a new configuration and
// re-reads the rules files without dropping a connection, as `nginx -s
// reload` does; an invalid configuration leaves the old one running and
// logs every problem; in cluster mode the primary passes the signal on.
// watch: true is in watch.test.ts (one file each: both start several
// gateway processes, which on a busy machine take tens of seconds each).
import t from 'tap'
import { join } from 'node:path'
import { Agent } from 'node:http'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { LiveryProcess } from '../helpers/livery-process.ts'
import { runCli } from '../helpers/cli.ts'
import { backends, everyProcessReloaded, get, keepBusy, reloaded, rules, slowMachineFetch } from './reload-fixture.ts'

t.test('SIGHUP reloads config and rules with requests in flight and keep-alive connections open', async t => {
  const up = await backends(t)
  const dir = t.testdir({ 'one.xml': rules('one.html'), 'two.xml': rules('two.html') })
  const file = join(dir, 'livery.yaml')
  const pidFile = join(dir, 'livery.pid')
  const write = (upstream: string, rulesFile: string, extra = ''): void => writeFileSync(file,
    `listen: { host: 127.0.0.1, port: 0 }\ncache: { directory: ./cache }\n${slowMachineFetch}${extra}sites:\n  - name: main\n    upstream: ${upstream}\n    theme: { rules: ./${rulesFile}, base: "${up.theme}/" }\n`)
  write(up.a, 'one.xml')
  const gateway = new LiveryProcess(['serve', '--config', file, '--pid-file', pidFile])
  t.teardown(() => gateway.stop())
  const port = Number((await gateway.waitForLine(l => l.msg === 'livery is listening')).port)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())

  const before = await get(port, '/', agent)
  t.match(before.body, /theme one[\s\S]*from A/, 'old upstream, old rules')
  const busy = keepBusy(t, port, agent)

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
  t.equal(after.connection, before.connection, 'the same keep-alive connection carries on')
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
  const kept = await busy.stop()
  t.same([still, ...kept].map(r => r.connection).filter(c => c !== before.connection), [], `and so does a refused one (${kept.length} health checks kept it busy in between, all on that connection)`)
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
