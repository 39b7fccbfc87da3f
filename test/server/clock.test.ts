// The coarse clock's first read is the time of that read (issue 10 found it returning the module's load time).
import t from 'tap'

t.test('the first coarseNow() after a pause is current', async t => {
  const { coarseNow } = await import(`../../src/clock.ts?first-read=${process.pid}`)
  // The pause is what is tested: the module loaded, then nobody read the clock for 400 ms.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400)
  const drift = Date.now() - (coarseNow() as number)
  t.ok(drift < 400, `the first read lags the real time by ${drift} ms, less than the 400 ms the module sat unread`)
})
