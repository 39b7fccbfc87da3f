// Issue 15: the buffer reclaimer forces a scavenge only while scavenges pay. During a cache fill the
// external growth is live stored pages (and, with the memory tier full, new pages replacing old ones whose
// bodies died old): a forced scavenge returned nothing and promoted every request in flight, so the old
// generation filled and mark-compacted every 0.5-1 s. Driven here through its test hatches, sample by sample.
import t from 'tap'
import { startBufferReclaimer } from '../../src/server/buffer-reclaimer.ts'

const MB = 1024 * 1024

/** Fake memory: `external` is V8's lazily updated figure, `buffers` the allocator's count; `gc` frees the garbage. */
function fakeMemory (): { external: number, buffers: number, garbage: number, gcs: number, grow: (live: number, dead: number) => void, gc: () => void } {
  const m = {
    external: 10 * MB,
    buffers: 10 * MB,
    garbage: 0,
    gcs: 0,
    grow (live: number, dead: number) { m.external += live + dead; m.buffers += live + dead; m.garbage += dead },
    gc () { m.gcs++; m.buffers -= m.garbage; m.garbage = 0 },
  }
  return m
}

function reclaimer (m: ReturnType<typeof fakeMemory>): ReturnType<typeof startBufferReclaimer> {
  const r = startBufferReclaimer({ threshold: 8 * MB, maxThreshold: 64 * MB, interval: 60_000, gc: m.gc, external: () => m.external, buffers: () => m.buffers })
  t.teardown(() => r.stop())
  return r
}

t.test('a stream of dead buffers: a scavenge every 8 MB, as before', async t => {
  const m = fakeMemory()
  const r = reclaimer(m)
  for (let i = 0; i < 100; i++) { m.grow(0, 1 * MB); r.check() }
  t.equal(r.forced, 11, 'one forced scavenge per 8 MB of garbage (plus the first 9 MB)')
  t.equal(r.threshold, 8 * MB, 'each paid, so the threshold stayed')
})

t.test('a cache fill (live growth): the forced scavenges back off to the cap', async t => {
  const m = fakeMemory()
  const r = reclaimer(m)
  for (let i = 0; i < 400; i++) { m.grow(1 * MB, 0); r.check() }
  // 9 MB → 8 MB threshold, then 16, 32, 64, 64, ...: 1 + 1 + 1 + 1 + (400 - 9 - 17 - 33 - 65) / 65 ≈ 8
  t.ok(r.forced <= 9, `${r.forced} forced scavenges for 400 MB of live growth (the old reclaimer forced 44)`)
  t.equal(r.threshold, 64 * MB, 'waits for the cap')
})

t.test('once scavenges pay again, the threshold comes back down', async t => {
  const m = fakeMemory()
  const r = reclaimer(m)
  for (let i = 0; i < 60; i++) { m.grow(1 * MB, 0); r.check() }
  t.ok(r.threshold > 8 * MB, 'backed off during the fill')
  for (let i = 0; i < 200 && r.threshold !== 8 * MB; i++) { m.grow(0, 1 * MB); r.check() }
  t.equal(r.threshold, 8 * MB, 'the first scavenge that returned its growth reset it')
  const before = r.forced
  for (let i = 0; i < 17; i++) { m.grow(0, 1 * MB); r.check() }
  t.equal(r.forced - before, 2, 'every 8 MB again')
})

t.test('without --expose-gc it does nothing', async t => {
  const r = startBufferReclaimer({ gc: undefined, external: () => 0, buffers: () => 0 })
  t.teardown(() => r.stop())
  r.check()
  t.equal(r.forced, 0)
})
