// A test file that tap kills on its timeout takes the gateways it started with
// it (test/helpers/livery-process.ts spawns them with a parent-death signal).
// Left running, they loaded the machine and held ports for the files after it
// (issue 10). Run with the default process count: the primary dies of the
// signal, and its workers follow it when their channel to it closes.
// Every process of the tree is waited for, the workers too: one that lived
// on while the test's directory was removed failed the teardown with
// ENOTEMPTY. It was hung in pino's exit-time flush of a stdout with no
// reader left (sonic-boom 4 retried EPIPE forever; test/foundation/log-exit.test.ts).
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs'
import { startUpstream } from './servers.ts'

t.test('gateways started by a killed test process do not outlive it', async t => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const dir = t.testdir({})
  const file = join(dir, 'livery.yaml')
  writeFileSync(file, `listen: { host: 127.0.0.1, port: 0 }\ncache: { directory: ./cache }\nsites:\n  - name: main\n    upstream: ${up.url}\n`)
  const fixture = fileURLToPath(new URL('./fixtures/gateway-parent.ts', import.meta.url))
  const parent = spawn(process.execPath, [fixture, file], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { parent.kill('SIGKILL') })
  const started = await new Promise<{ port: number, pid: number }>((resolve, reject) => {
    let out = ''
    parent.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c
      if (out.includes('\n')) resolve(JSON.parse(out.slice(0, out.indexOf('\n'))) as { port: number, pid: number })
    })
    parent.once('exit', code => reject(new Error(`the fixture exited (${String(code)}) before its gateway listened`)))
  })
  // A connection to the gateway: it closes when the process that serves it is gone.
  const socket = connect(started.port, '127.0.0.1')
  await once(socket, 'connect')
  // Not events.once(): it rejects on 'error', and a gateway killed with the connection open resets it.
  socket.on('error', () => {})
  const closed = new Promise<void>(resolve => { socket.once('close', () => resolve()) })
  const tree = livingIn(dir)
  t.ok(tree.includes(started.pid) && tree.length >= 3, `the fixture, the primary and its workers are found by their working directory (${tree.length} processes)`)
  parent.kill('SIGKILL')
  await once(parent, 'exit')
  await closed
  t.pass('the serving process went with its test process')
  t.equal(processState(started.pid), 'gone', 'and so did the gateway process the test started')
  // The cluster workers: every process still working in the test's directory (the tree's cwd).
  const deadline = Date.now() + 60_000
  let left = livingIn(dir)
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 50))
    left = livingIn(dir)
  }
  t.same(left.map(describe), [], 'and so did its cluster workers, once their channel to the primary closed')
})

/** A process for a failure message: pid, state, parent, command line. */
function describe (pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return `${pid} (${state}, parent ${ppid}): ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim()}`
  } catch {
    return `${pid} (gone)`
  }
}

/** Pids of the processes, not yet exited, whose working directory is `dir`. */
function livingIn (dir: string): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let cwd: string
    try { cwd = readlinkSync(`/proc/${name}/cwd`) } catch { continue }
    if (cwd === dir && processState(Number(name)) !== 'gone') pids.push(Number(name))
  }
  return pids
}

/** 'gone' once the process has exited: no such pid, or a zombie its new parent has not reaped yet. */
function processState (pid: number): string {
  try {
    // The state follows the command name in parentheses, which may itself hold spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state === 'Z' || state === 'X' ? 'gone' : `running (state ${state})`
  } catch {
    return 'gone'
  }
}
