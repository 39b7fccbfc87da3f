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
