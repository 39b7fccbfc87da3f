import t from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { MemoryStore } from '../../src/cache/memory-store.ts'
import { storeConformance } from './store-conformance.ts'
import { makeEntry } from './helpers.ts'

await storeConformance(t, 'memory', (t) => {
  const s = new MemoryStore({ maxSize: 16 * 1024 * 1024, maxEntrySize: 1024 * 1024 })
  t.teardown(() => s.close())
  return s
})

t.test('never exceeds its byte limit (10,000 mixed entries) and counts evictions', async (t) => {
  const maxSize = 2 * 1024 * 1024
  const s = new MemoryStore({ maxSize, maxEntrySize: 256 * 1024 })
  t.teardown(() => s.close())
  let evicted = 0
  const onEvict = (): void => { evicted++ }
  subscribe('livery:cache:eviction', onEvict)
  t.teardown(() => unsubscribe('livery:cache:eviction', onEvict))
  const sizes = [10, 500, 4_000, 30_000, 120_000, 300_000]
  let maxSeen = 0
  let refused = 0
  for (let i = 0; i < 10_000; i++) {
    const size = sizes[(i * 7) % sizes.length]
    const ok = await s.put(`k${i}`, makeEntry(`http://a.test/${i}`, Buffer.alloc(size, i & 0xff)), 60_000)
    if (!ok) refused++
    const b = s.stats().memory.bytes
    if (b > maxSeen) maxSeen = b
  }
  t.ok(maxSeen <= maxSize, `peak ${maxSeen} bytes <= ${maxSize}`)
  t.ok(refused > 0, `entries over maxEntrySize refused (${refused})`)
  const st = s.stats().memory
  t.ok(st.evictions > 1000, `evictions counted (${st.evictions})`)
  t.equal(evicted, st.evictions, 'one eviction event per eviction')
  t.ok(st.entries > 10, 'still holds entries')
})

t.test('rejects impossible limits with a message naming the key', async (t) => {
  t.throws(() => new MemoryStore({ maxSize: 0 }), /cache\.memory\.maxSize/)
  t.throws(() => new MemoryStore({ maxSize: 10, maxEntrySize: 20 }), /cache\.memory\.maxEntrySize/)
})

// Issue 15, item 8: replacing 115k small entries with 1 MB ones stalled the event loop for 1.5 s, because
// lru-cache evicts until a new entry fits, all in one call. Eviction now runs in steps of a bounded size.
t.test('eviction runs in bounded steps, and the tier stays within maxSize + maxEntrySize meanwhile', async (t) => {
  const { EVICTIONS_PER_STEP } = await import('../../src/cache/memory-store.ts')
  const maxSize = 8 * 1024 * 1024
  const maxEntrySize = 2 * 1024 * 1024
  const s = new MemoryStore({ maxSize, maxEntrySize })
  t.teardown(() => s.close())
  for (let i = 0; i < 6000; i++) await s.put(`small${i}`, makeEntry(`http://a.test/s/${i}`, Buffer.alloc(100, 1)), 60_000)
  const small = s.stats().memory.entries
  t.ok(small > 2 * EVICTIONS_PER_STEP * 2, `the tier is full of small entries (${small})`)

  const steps: Array<{ evicted: number, bytes: number, pending: boolean }> = []
  let settled: (() => void) | undefined
  const onStep = (m: unknown): void => {
    steps.push(m as { evicted: number, bytes: number, pending: boolean })
    if (!(m as { pending: boolean }).pending) settled?.()
  }
  subscribe('livery:cache:eviction_step', onStep)
  t.teardown(() => unsubscribe('livery:cache:eviction_step', onStep))

  const dropped: Array<{ tier: string, reason: string }> = []
  const onDrop = (m: unknown): void => { dropped.push(m as { tier: string, reason: string }) }
  subscribe('livery:cache:write_dropped', onDrop)
  t.teardown(() => unsubscribe('livery:cache:write_dropped', onDrop))
  // Puts in a row, without a turn of the event loop between them: the background steps cannot run meanwhile.
  const mb = 1024 * 1024
  const accepted: number[] = []
  let peak = 0
  for (let i = 0; i < 12; i++) {
    if (await s.put(`big${i}`, makeEntry(`http://a.test/b/${i}`, Buffer.alloc(mb, 2)), 60_000)) accepted.push(i)
    peak = Math.max(peak, s.stats().memory.bytes)
  }
  t.ok(peak > maxSize, `the tier went over maxSize while eviction ran behind (${peak})`)
  t.ok(peak <= maxSize + maxEntrySize, `but never past maxSize + maxEntrySize (${peak} <= ${maxSize + maxEntrySize})`)
  t.ok(accepted.length > 0 && accepted.length < 12, `puts past the hard bound were refused (${accepted.length} of 12 accepted)`)
  t.same(dropped, Array(12 - accepted.length).fill({ tier: 'memory', reason: 'evicting' }), 'each refusal was published for the metric')
  t.ok(s.evicting, 'further steps are scheduled')
  t.ok(steps.every(st => st.bytes <= maxSize + maxEntrySize), 'no step left the tier past the hard bound')
  if (s.evicting) await new Promise<void>(resolve => { settled = resolve })

  t.ok(steps.length > accepted.length, `steps ran after the puts, on later turns (${steps.length} steps)`)
  t.ok(steps.every(st => st.evicted <= EVICTIONS_PER_STEP), `no step evicted more than ${EVICTIONS_PER_STEP} entries`)
  t.ok(steps.some(st => st.evicted === EVICTIONS_PER_STEP), 'steps were cut short at the bound')
  t.ok(s.stats().memory.bytes <= maxSize, `the steps brought the tier back within maxSize (${s.stats().memory.bytes})`)
  for (const i of accepted) t.ok((await s.get(`big${i}`))?.body.length === mb, `big${i} is served`)
  for (let i = 0; i < 12; i++) if (!accepted.includes(i)) t.equal(await s.get(`big${i}`), undefined, `big${i} (refused) stored nothing`)
  // Replaced, refused: the older copy of a key does not survive a refused put of a newer one.
  t.equal(await s.put('big0', makeEntry('http://a.test/b/0', Buffer.alloc(mb, 3)), 60_000), true, 'with room again, a 1 MB put is accepted')
  t.equal((await s.get('big0'))?.body[0], 3, 'and the newer copy is what is served')
})

t.test('a refused put removes the older copy of its key', async (t) => {
  const s = new MemoryStore({ maxSize: 4 * 1024 * 1024, maxEntrySize: 2 * 1024 * 1024 })
  t.teardown(() => s.close())
  for (let i = 0; i < 3000; i++) await s.put(`small${i}`, makeEntry(`http://a.test/s/${i}`, Buffer.alloc(100, 1)), 60_000)
  await s.put('k', makeEntry('http://a.test/k', Buffer.alloc(1000, 1)), 60_000)
  // One step frees about 0.5 MB of small entries: a 2 MB put leaves the tier 1.5 MB over maxSize, and the
  // next one in the same turn cannot fit under maxSize + maxEntrySize.
  const body = Buffer.alloc(2000 * 1024, 2)
  t.equal(await s.put('big', makeEntry('http://a.test/big', body), 60_000), true, 'the first large put is stored, over maxSize')
  t.equal(await s.put('k', makeEntry('http://a.test/k', Buffer.alloc(2000 * 1024, 9)), 60_000), false, 'the newer, large copy of k is refused')
  t.equal(await s.get('k'), undefined, 'and the older copy of k is gone, not served')
})
