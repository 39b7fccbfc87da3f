// Issue 15: the buffer reclaimer forces a scavenge only while scavenges pay. During a cache fill the
// external growth is live stored pages (and, with the memory tier full, new pages replacing old ones whose
// bodies died old): a forced scavenge returned nothing and promoted every request in flight, so the old
// generation filled and mark-compacted every 0.5-1 s. It judges by V8's external-memory figure alone (no
// process.memoryUsage(), which reads /proc), and asks for nothing while V8 is marking, where a scavenge
// request makes V8 finalize the marking at once. Driven here through its test hatches, sample by sample.
import t from 'tap'
import { startBufferReclaimer } from '../../src/server/buffer-reclaimer.ts'

const MB = 1024 * 1024

/**
 * Fake memory shaped like V8's external-memory figure: a scavenge frees the garbage, but the figure only
 * comes down at the next buffer allocated after it (V8's sweeper runs concurrently and is finalized then).
 */
function fakeMemory (): { external: number, garbage: number, swept: number, gcs: number, marking: boolean, grow: (live: number, dead: number) => void, gc: () => void } {
  const m = {
    external: 10 * MB,
    garbage: 0,
    swept: 0,
    gcs: 0,
    marking: false,
    grow (live: number, dead: number) { m.external += live + dead - m.swept; m.swept = 0; m.garbage += dead },
    gc () { m.gcs++; m.swept += m.garbage; m.garbage = 0 },
  }
  return m
}

function reclaimer (m: ReturnType<typeof fakeMemory>): ReturnType<typeof startBufferReclaimer> {
  const r = startBufferReclaimer({ threshold: 8 * MB, maxThreshold: 64 * MB, interval: 60_000, gc: m.gc, external: () => m.external, marking: () => m.marking })
  t.teardown(() => r.stop())
  return r
}

t.test('a stream of dead buffers: a scavenge every 8 MB, judged by the lazily lowered external figure', async t => {
  const m = fakeMemory()
  const r = reclaimer(m)
  for (let i = 0; i < 100; i++) { m.grow(0, 1 * MB); r.check() }
  t.equal(r.forced, 10, 'one forced scavenge per 10 MB of garbage: 9 MB of growth, counted from the figure once it fell')
  t.equal(r.threshold, 8 * MB, 'each paid, although the figure only fell at the next allocation')
  t.ok(m.external < 20 * MB, `external memory stayed low: ${m.external / MB} MB`)
})

t.test('a cache fill (live growth): the forced scavenges back off to the cap', async t => {
  const m = fakeMemory()
  const r = reclaimer(m)
  for (let i = 0; i < 400; i++) { m.grow(1 * MB, 0); r.check() }
  t.ok(r.forced <= 9, `${r.forced} forced scavenges for 400 MB of live growth (the first reclaimer forced 44)`)
  t.equal(r.threshold, 64 * MB, 'waits for the cap')
})

t.test('once scavenges pay again, the threshold comes back down', async t => {
  const m = fakeMemory()
  const r = reclaimer(m)
  for (let i = 0; i < 60; i++) { m.grow(1 * MB, 0); r.check() }
  t.ok(r.threshold > 8 * MB, 'backed off during the fill')
  for (let i = 0; i < 300 && r.threshold !== 8 * MB; i++) { m.grow(0, 1 * MB); r.check() }
  t.equal(r.threshold, 8 * MB, 'the first scavenge that returned its growth reset it')
  const before = r.forced
  for (let i = 0; i < 30; i++) { m.grow(0, 1 * MB); r.check() }
  t.equal(r.forced - before, 3, 'every 10 MB again')
})

t.test('while V8 is marking it asks for no scavenge, and resumes after the mark-compact', async t => {
  const m = fakeMemory()
  const r = reclaimer(m)
  m.marking = true
  for (let i = 0; i < 40; i++) { m.grow(0, 1 * MB); r.check() }
  t.equal(m.gcs, 0, 'no gc() call while marking: it would make V8 finalize the marking at once')
  t.ok(r.deferred > 0, `${r.deferred} scavenges deferred`)
  m.marking = false
  m.grow(0, 1 * MB)
  r.check()
  t.equal(m.gcs, 1, 'the first sample after marking ended forces the deferred scavenge')
})

t.test('without --expose-gc it does nothing', async t => {
  const r = startBufferReclaimer({ gc: undefined, external: () => 0 })
  t.teardown(() => r.stop())
  r.check()
  t.equal(r.forced, 0)
})
