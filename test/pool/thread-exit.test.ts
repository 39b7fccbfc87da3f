// An idle transform thread exits when the pool is stopped (issue 10). With
// piscina's default `atomics: 'sync'`, idle threads wait in Atomics.wait,
// and a terminated thread that had loaded the theme modules on a busy core
// stayed there for good (native stack: FutexEmulation::WaitSync): 2 to 4 of
// these 18 pools in every run, so the gateway's close() never returned and
// the process could not exit (Node joins its threads at exit). The child
// keeps two threads spinning, because the hang needs the pool's threads to
// be pre-empted.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

t.test('idle transform threads exit when their pools are stopped', async t => {
  const fixture = fileURLToPath(new URL('./fixtures/idle-pools.ts', import.meta.url))
  // tap's process tracking puts its import hooks back into NODE_OPTIONS for
  // every child it sees spawned, and in the threads they slow module loading
  // enough to hide the hang; env(1) takes them out again.
  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, fixture, '3', '6', '1500', '2'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  // A stuck thread keeps the child from exiting after it has printed: the result line is what counts.
  const line = await new Promise<string>(resolve => {
    let out = ''
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')))
    })
    child.stdout.once('close', () => resolve(out))
  })
  const result = JSON.parse(line === '' ? '{}' : line) as { pools?: number, stuck?: number }
  t.equal(result.pools, 18, 'eighteen pools were stopped')
  t.equal(result.stuck, 0, 'every idle thread exited')
})
