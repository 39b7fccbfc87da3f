// A process whose stdout has no reader any more exits when asked to, instead
// of retrying the exit-time log flush forever. sonic-boom 4 (pino's log
// writer) retried every write error but EAGAIN in flushSync: a cluster worker
// whose primary was SIGKILLed, with its stdout reader gone too, hung for good
// in Atomics.wait (test/helpers/orphans.test.ts found it). package.json
// overrides it with sonic-boom 5, which throws such errors.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const fixture = fileURLToPath(new URL('./fixtures/log-exit-child.ts', import.meta.url))

t.test('the logger does not hold up an exit when stdout is a broken pipe', async t => {
  const child = spawn(process.execPath, [fixture], { stdio: ['pipe', 'pipe', 'ignore'] })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  // The reader goes away before the child writes anything: every write it makes fails with EPIPE.
  child.stdout.destroy()
  child.stdin.end('exit now\n')
  // A hang guard, not a speed bound: the child needs a few hundred ms; one that hangs never exits.
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const [code, signal] = await exited
  clearTimeout(guard)
  t.equal(signal, null, 'the child exited by itself (it was not killed by the hang guard)')
  t.equal(code, 0, 'with the exit code it asked for')
})
