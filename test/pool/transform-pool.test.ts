import t from 'tap'
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, constants, openSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { Worker } from 'node:worker_threads'
import { LogCapture } from '../helpers/logs.ts'
import { TransformPool } from '../../src/pool/index.ts'
import { hasCode } from '../../src/errors.ts'
import type { TransformTimeoutMessage } from '../../src/pool/channels.ts'
import { keepAlive, nextMessage } from './helpers.ts'

const worker = new URL('./fixtures/transform-worker.ts', import.meta.url)
/**
 * The budget of every task whose budget is not under test. It runs from
 * run() and includes waiting for a thread, and on a busy machine a fresh
 * thread took longer than 5 s to load (issue 10): a minute is a safety net.
 */
const ample = 60_000

function makePool (t: { teardown: (fn: () => unknown) => void }, opts: { maxQueue?: number } = {}): TransformPool {
  const pool = new TransformPool({ threads: 1, filename: worker, ...opts })
  t.teardown(() => pool.destroy())
  return pool
}

t.test('runs a named export of a .ts worker module on plain data', async t => {
  const pool = makePool(t)
  const out = await pool.run<{ text: string }, { text: string, threadId: number }>({ text: 'hello' }, { name: 'upper', timeout: ample })
  t.equal(out.text, 'HELLO')
  t.ok(out.threadId > 0, 'it ran on a worker thread')
  t.match(pool.stats(), { threads: 1, utilization: 0, queueSize: 0, completed: 1, timeouts: 0 })
})

t.test('a task returning transferring() moves its buffers back instead of copying them', async t => {
  const pool = makePool(t)
  t.equal(await pool.run<undefined, boolean>(undefined, { name: 'movedAway', timeout: ample }), false)
  const out = await pool.run<{ size: number }, { bytes: Uint8Array }>({ size: 100_000 }, { name: 'moveBytes', timeout: ample })
  t.equal(out.bytes.byteLength, 100_000)
  t.ok(out.bytes.every(b => b === 7), 'the bytes arrived')
  t.equal(await pool.run<undefined, boolean>(undefined, { name: 'movedAway', timeout: ample }), true, 'the thread\'s buffer was detached: moved, not cloned')
})

t.test('a worker error keeps its Livery code; others become LIVERY_ERR_TRANSFORM', async t => {
  const pool = makePool(t)
  const err: unknown = await pool.run({ message: 'bad selector "div["' }, { name: 'fail', timeout: ample }).catch((e: unknown) => e)
  t.ok(hasCode(err, 'LIVERY_ERR_SELECTOR'), 'the code crossed the thread boundary')
  t.match(err, { message: 'bad selector "div["', cause: { stack: /transform-worker\.ts/ } })
  await t.rejects(pool.run({}, { name: 'missing', timeout: ample }), { code: 'LIVERY_ERR_TRANSFORM', message: /exports no function named missing/ })
  await t.rejects(pool.run({}, { name: 'throwsPlain', timeout: ample }), { code: 'LIVERY_ERR_TRANSFORM', message: /theming failed: plain failure/ })
})

t.test('a task past its budget terminates its thread; the pool recovers', async t => {
  keepAlive(t)
  const pool = makePool(t)
  const before = await pool.run<undefined, number>(undefined, { name: 'whoami', timeout: ample })
  const published = nextMessage<TransformTimeoutMessage>('livery:pool:transform-timeout')
  const started = performance.now()
  await t.rejects(pool.run(undefined, { name: 'spin', timeout: 200 }), { code: 'LIVERY_ERR_TRANSFORM_TIMEOUT', message: 'theming took longer than 200ms' })
  t.ok(performance.now() - started >= 190, 'the budget was honoured')
  t.same(await published, { name: 'spin', timeout: 200 })
  const after = await pool.run<undefined, number>(undefined, { name: 'whoami', timeout: ample })
  t.not(after, before, 'a fresh thread serves the next task (the only thread was spinning)')
  const out = await pool.run<{ text: string }, { text: string }>({ text: 'still works' }, { name: 'upper', timeout: ample })
  t.equal(out.text, 'STILL WORKS')
  t.equal(pool.stats().timeouts, 1)
})

t.test('a queued task\'s budget starts when a thread starts it, not while it waits (issue 13)', async t => {
  keepAlive(t)
  const pool = makePool(t)
  const gate = new Int32Array(new SharedArrayBuffer(4))
  const holding = nextMessage<{ name: string }>('livery:pool:transform-started')
  const first = pool.run<{ gate: Int32Array }, string>({ gate }, { name: 'hold', timeout: 30_000 })
  await holding
  const second = pool.run<{ text: string }, { text: string }>({ text: 'queued' }, { name: 'upper', timeout: 100 })
  // The property under test is about time: the queued task waits for longer than its own budget.
  await new Promise(resolve => setTimeout(resolve, 300))
  Atomics.store(gate, 0, 1)
  Atomics.notify(gate, 0)
  t.equal(await first, 'released')
  t.match(await second, { text: 'QUEUED' }, 'it was not timed out by its wait for the thread')
  t.equal(pool.stats().timeouts, 0)
})

t.test('the caller aborting a running task terminates it too', async t => {
  keepAlive(t)
  const pool = makePool(t)
  const client = new AbortController()
  // The thread flips this shared flag once the task is running on it.
  const started = new Int32Array(new SharedArrayBuffer(4))
  const running = pool.run({ started }, { name: 'spin', timeout: ample, signal: client.signal })
  await Atomics.waitAsync(started, 0, 0).value
  client.abort()
  const err: unknown = await running.catch((e: unknown) => e)
  t.ok(hasCode(err, 'LIVERY_ERR_CLIENT_ABORTED'))
  t.equal(await pool.run<{ text: string }, { text: string }>({ text: 'ok' }, { name: 'upper', timeout: ample }).then(o => o.text), 'OK')
  await t.rejects(pool.run({ text: 'x' }, { name: 'upper', timeout: ample, signal: AbortSignal.abort() }), { code: 'LIVERY_ERR_CLIENT_ABORTED' })
})

t.test('a full queue fails fast with LIVERY_ERR_TRANSFORM_BUSY', async t => {
  keepAlive(t)
  const pool = makePool(t, { maxQueue: 1 })
  const spinning = pool.run(undefined, { name: 'spin', timeout: 300 })
  const queued = pool.run({ text: 'q' }, { name: 'upper', timeout: ample })
  t.match(pool.stats(), { queueSize: 1 })
  await t.rejects(pool.run({ text: 'x' }, { name: 'upper', timeout: ample }), { code: 'LIVERY_ERR_TRANSFORM_BUSY', status: 503 })
  await t.rejects(spinning, { code: 'LIVERY_ERR_TRANSFORM_TIMEOUT' })
  t.match(await queued, { text: 'Q' }, 'the queued task runs on the replacement thread')
})

t.test('close finishes work, then refuses new tasks', async t => {
  const pool = new TransformPool({ threads: 1, filename: worker.pathname })
  const pending = pool.run<{ text: string }, { text: string }>({ text: 'last' }, { name: 'upper', timeout: ample })
  const closing = pool.close()
  t.equal((await pending).text, 'LAST')
  await closing
  await pool.close()
  await t.rejects(pool.run({ text: 'x' }, { name: 'upper', timeout: ample }), { code: 'LIVERY_ERR_CLOSED' })
  await pool.destroy()
})

t.test('destroy and close return though a thread cannot be stopped, and say so', async t => {
  // A thread blocked in a system call cannot be terminated until the call
  // returns, and piscina waits for every thread's exit: without a bound the
  // gateway's close() never returned (issue 10: tests hung in teardown).
  const fifo = join(t.testdir({}), 'gate')
  execFileSync('mkfifo', [fifo])
  const logs = new LogCapture()
  let thread: Worker | undefined
  const onWorker = (w: Worker): void => { thread = w }
  process.on('worker', onWorker)
  t.teardown(() => { process.off('worker', onWorker) })
  const pool = new TransformPool({ threads: 1, filename: worker, exitTimeout: 200, logger: logs.logger })
  const blocked = pool.run({ path: fifo }, { name: 'readFifo', timeout: ample }).then(() => undefined, (err: unknown) => err)
  // The thread holds the FIFO open for reading once it is in the read: a
  // non-blocking open for writing succeeds only from then on (ENXIO before).
  // Never a blocking open here: if the thread were gone, it would block this
  // thread for good, tap's own timeout included.
  let writer: number | undefined
  while (writer === undefined) {
    try {
      writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err
      await new Promise(resolve => { setTimeout(resolve, 5) })
    }
  }
  const exited = once(thread as Worker, 'exit')
  await pool.destroy()
  t.match(await blocked, { code: 'LIVERY_ERR_TRANSFORM', message: /Terminating worker thread/ }, 'the blocked task fails')
  t.match(logs.find({ module: 'transform-pool', exitTimeout: 200 }), [{ level: 40, msg: /did not exit within 200ms of being stopped/ }], 'the stuck thread is logged')
  await pool.close()
  // Let the read return: the thread then ends, and this process can exit.
  writeSync(writer, 'x')
  closeSync(writer)
  await exited
})
