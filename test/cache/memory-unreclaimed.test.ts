// Issue 15, RSS: bodies the memory tier evicted count against maxSize until V8 frees them.
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { MemoryStore } from '../../src/cache/memory-store.ts'
import { makeEntry } from './helpers.ts'

const run = promisify(execFile)
const fixture = fileURLToPath(new URL('./fixtures/memory-unreclaimed.ts', import.meta.url))
const MiB = 1024 * 1024

interface Phase { entries: number, bytes: number, unreclaimed: number }

t.test('evicted bodies still in memory count until collected, capped at a quarter of maxSize', async t => {
  const { stdout } = await run(process.execPath, ['--expose-gc', fixture])
  const r = JSON.parse(stdout) as { held: Phase, collected: Phase & { turns: number }, refilled: Phase }
  t.comment(JSON.stringify(r))
  // Without the accounting 15 entries of 1 MiB fit in 16 MiB; with 4 MiB (the cap) counted, at most 12.
  t.ok(r.held.unreclaimed >= 4 * MiB, `the evicted bodies the process still holds are unreclaimed (${r.held.unreclaimed})`)
  t.ok(r.held.entries <= 12, `the tier made room for them: ${r.held.entries} live entries`)
  t.ok(r.held.bytes + Math.min(r.held.unreclaimed, 4 * MiB) <= 16 * MiB, 'live plus counted unreclaimed bytes stay within maxSize')
  t.equal(r.collected.unreclaimed, 0, 'once V8 collected them, nothing is unreclaimed')
  t.equal(r.refilled.entries, Math.min(r.collected.entries + 4, 15), 'the room they held is used again')
})

t.test('a soft purge keeps the body, and small bodies are not watched', async t => {
  const store = new MemoryStore({ maxSize: 4 * MiB })
  t.teardown(() => store.close())
  const body = Buffer.alloc(64 * 1024, 1)
  await store.put('big', makeEntry('http://example.org/big', body), 60_000)
  t.equal(await store.purge({ urls: ['http://example.org/big'] }, { soft: true }), 1)
  t.equal(store.stats().memory.unreclaimed, 0, 'the soft-purged copy shares the body: nothing left the tier')
  t.ok(store.getSync('big') !== undefined, 'the entry is still there')
  for (let i = 0; i < 60_000; i++) await store.put(`s${i}`, makeEntry(`http://example.org/s${i}`, `small ${i}`), 60_000)
  t.ok(store.stats().memory.evictions > 0, 'small entries were evicted')
  t.equal(store.stats().memory.unreclaimed, body.buffer.byteLength, 'only the large body is counted, not the pooled small ones')
})
