/**
 * The transform cost estimate is made of CPU time (src/server/thread-cpu.ts):
 * on a busy machine wall time made a 1 ms transform look like 20 ms and sent
 * every page of a cheap site to the threads. Time a thread spends blocked
 * (here in Atomics.wait, as it would be while the core runs something else)
 * is not counted.
 */
import t from 'tap'
import { threadCpuMs } from '../../src/server/thread-cpu.ts'

t.test('blocked time is not CPU time; work is', async t => {
  const before = threadCpuMs()
  const wallBefore = performance.now()
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300)
  const blocked = threadCpuMs() - before
  const wall = performance.now() - wallBefore
  t.ok(wall >= 290, `the thread was blocked for ${wall.toFixed(0)} ms`)
  t.ok(blocked < wall / 3, `and used ${blocked.toFixed(1)} ms of CPU meanwhile`)
  const start = threadCpuMs()
  let x = 0
  for (let i = 0; i < 2e7; i++) x += i % 7
  t.ok(x > 0)
  t.ok(threadCpuMs() - start > 0, 'a loop uses CPU time')
})
