import t from 'tap'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { once } from 'node:events'
import { readdir, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DiskStore } from '../../src/cache/disk-store.ts'
import { storeConformance } from './store-conformance.ts'
import { makeEntry } from './helpers.ts'
import { bodyFor } from './fixtures/disk-writer.ts'

await storeConformance(t, 'disk', async (t) => {
  const s = await DiskStore.open({ directory: t.testdir(), maxSize: 16 * 1024 * 1024 })
  t.teardown(() => s.destroy())
  return s
})

/** Sum of the entry files on disk, the number the byte limit is about. */
async function entryBytes (dir: string): Promise<{ bytes: number, files: string[] }> {
  let bytes = 0
  const files: string[] = []
  for (const sub of await readdir(dir)) {
    if (sub.length !== 2) continue
    for (const f of await readdir(join(dir, sub))) {
      const p = join(dir, sub, f)
      bytes += (await stat(p)).size
      files.push(p)
    }
  }
  return { bytes, files }
}

function collect (name: string, t: { teardown: (fn: () => unknown) => void }): unknown[] {
  const got: unknown[] = []
  const fn = (m: unknown): void => { got.push(m) }
  subscribe(name, fn)
  t.teardown(() => unsubscribe(name, fn))
  return got
}

t.test('never exceeds its byte limit; evicts least recently used first', async (t) => {
  const dir = t.testdir()
  const maxSize = 200_000
  const s = await DiskStore.open({ directory: dir, maxSize, maxEntrySize: 50_000 })
  t.teardown(() => s.destroy())
  const evictions = collect('livery:cache:eviction', t)
  t.equal(await s.put('huge', makeEntry('http://a.test/huge', Buffer.alloc(60_000)), 60_000), false, 'over maxEntrySize refused')
  await s.put('keep', makeEntry('http://a.test/keep', Buffer.alloc(20_000, 1)), 60_000)
  let peak = 0
  for (let i = 0; i < 60; i++) {
    await s.put(`k${i}`, makeEntry(`http://a.test/${i}`, Buffer.alloc(1000 + (i * 3001) % 40_000, i)), 60_000)
    t.ok(await s.get('keep'), `recently used entry survives write ${i}`)
    peak = Math.max(peak, s.stats().disk.bytes, (await entryBytes(dir)).bytes)
  }
  t.ok(peak <= maxSize, `peak ${peak} bytes <= ${maxSize}`)
  t.equal(await s.get('k0'), undefined, 'old entries evicted')
  t.ok(await s.get('k59'), 'newest entry present')
  t.equal(s.stats().disk.bytes, (await entryBytes(dir)).bytes, 'accounting matches the files')
  t.ok(s.stats().disk.evictions > 0 && evictions.length === s.stats().disk.evictions, 'evictions counted and published')
})

t.test('readable after restart, with the purge index rebuilt from file heads', async (t) => {
  const dir = t.testdir()
  const a = await DiskStore.open({ directory: dir, maxSize: 1_000_000 })
  await a.put('x', makeEntry('http://a.test/x', 'x', { tags: ['news'] }), 60_000)
  await a.put('y', makeEntry('http://a.test/y', 'y'), 60_000)
  await a.put('gone', makeEntry('http://a.test/gone', 'g'), 20)
  await a.close()
  await t.rejects(a.get('x'), { code: 'LIVERY_ERR_CLOSED' })
  // A clock a second ahead, so the 20 ms entry is expired without sleeping.
  const b = await DiskStore.open({ directory: dir, maxSize: 1_000_000, now: () => Date.now() + 1000 })
  t.teardown(() => b.destroy())
  t.equal((await b.get('x'))?.body.toString(), 'x', 'entry served after reopen')
  t.equal((await b.get('x'))?.tier, 'disk', 'tier is disk')
  const keys: string[] = []
  for await (const k of b.keys()) keys.push(k)
  t.same(keys.sort(), ['x', 'y'], 'keys rebuilt; the expired entry is not listed')
  t.equal(await b.purge({ tags: ['news'] }), 1, 'tag purge works from the rebuilt index')
  t.equal(await b.get('x'), undefined)
  t.ok(await b.get('y'))
})

t.test('a corrupt file is dropped and counted, never served', async (t) => {
  const dir = t.testdir()
  const a = await DiskStore.open({ directory: dir, maxSize: 1_000_000 })
  await a.put('c', makeEntry('http://a.test/c', Buffer.alloc(5000, 7)), 60_000)
  await a.close()
  const { files } = await entryBytes(dir)
  const buf = Buffer.alloc(100, 0x41)
  await writeFile(files[0], Buffer.concat([Buffer.from('LVD1'), buf])) // garbage with the magic
  const corrupt = collect('livery:cache:corrupt', t)
  const b = await DiskStore.open({ directory: dir, maxSize: 1_000_000 })
  t.teardown(() => b.destroy())
  t.equal(await b.get('c'), undefined, 'not served')
  await b.close()
  t.ok(corrupt.length >= 1, 'published on livery:cache:corrupt')
  t.equal((await entryBytes(dir)).files.length, 0, 'the file is deleted')
})

t.test('kill -9 during writes: a fresh store serves every complete entry, drops torn ones, stays under its limit', async (t) => {
  const dir = t.testdir()
  const maxSize = 500_000
  const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'disk-writer.ts'), dir, String(maxSize)], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const done: number[] = []
  let pending = ''
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      pending += d.toString()
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const l of lines) done.push(Number(l))
      if (done.length >= 300) resolve()
    })
  })
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
  t.ok(done.length >= 300, `child completed ${done.length} writes before the kill`)

  const before = await entryBytes(dir)
  t.ok(before.bytes <= maxSize, `files after the kill: ${before.bytes} bytes <= ${maxSize}`)
  // A torn file as a power loss could leave (the rename made it visible, the
  // data never reached the disk): truncate one complete entry.
  const last = done[done.length - 1]
  const lastHash = createHash('sha256').update(`k${last}`).digest('hex')
  const torn = before.files.find((f) => !f.includes(lastHash)) ?? ''
  await truncate(torn, Math.floor((await stat(torn)).size / 2))

  const corrupt = collect('livery:cache:corrupt', t)
  const s = await DiskStore.open({ directory: dir, maxSize })
  t.teardown(() => s.destroy())
  // What is left under tmp/ is the new store's own temp directory, empty.
  const left = await readdir(join(dir, 'tmp'), { recursive: true })
  t.ok(left.length === 1 && left[0].startsWith(`${process.pid}.`), `temp files of interrupted writes are gone (left: ${left.join(', ')})`)
  const keys: string[] = []
  for await (const k of s.keys()) keys.push(k)
  let served = 0
  for (const k of keys) {
    const n = Number(k.slice(1))
    const e = await s.get(k)
    if (e === undefined) continue
    served++
    t.ok(e.body.equals(bodyFor(n)), `${k}: every byte intact`)
  }
  t.ok(corrupt.length >= 1, 'the torn file was detected and counted')
  // The truncated file's head is intact, so it is listed, but its body fails the CRC.
  t.equal(served, keys.length - 1, 'every listed entry but the torn one is served whole')
  t.ok(served >= 5, `${served} entries served after the crash`)
  const lastEntry = await s.get(`k${last}`)
  t.ok(lastEntry?.body.equals(bodyFor(last)), `the last acknowledged write (k${last}) survived`)
  t.ok(s.stats().disk.bytes <= maxSize, 'accounting under the limit')
  await s.close()
  t.ok((await entryBytes(dir)).bytes <= maxSize, 'files under the limit')
})

// Issue 15: the serial queue dropped most writes of a burst, each after building the whole file and logging a stack.
t.test('a burst of puts all reaches disk, in parallel, with exact byte accounting', async (t) => {
  const dir = t.testdir()
  const s = await DiskStore.open({ directory: dir, maxSize: 64 * 1024 * 1024 })
  t.teardown(() => s.destroy())
  const dropped = collect('livery:cache:write_dropped', t)
  const n = 1000
  const results = await Promise.all(Array.from({ length: n }, (_, i) =>
    s.put(`k${i}`, makeEntry(`http://a.test/${i}`, Buffer.alloc(4096, i % 251)), 60_000)))
  t.equal(results.filter(Boolean).length, n, `all ${n} concurrent puts were accepted and written`)
  t.same(dropped, [], 'none was dropped')
  const onDisk = await entryBytes(dir)
  t.equal(onDisk.files.length, n, 'one file per entry')
  t.equal(s.diskStats().bytes, onDisk.bytes, 'the accounted bytes are the bytes on disk')
  for (const i of [0, 499, 999]) t.ok((await s.get(`k${i}`))?.body.equals(Buffer.alloc(4096, i % 251)), `k${i} reads back`)
})

t.test('puts beyond maxPendingWrites are refused at once, counted, and logged once per burst', async (t) => {
  const dir = t.testdir()
  const lines: string[] = []
  const { pino } = await import('pino')
  const logger = pino({ level: 'warn' }, { write: (l: string) => { lines.push(l) } })
  const s = await DiskStore.open({ directory: dir, maxSize: 64 * 1024 * 1024, maxPendingWrites: 16, logger })
  t.teardown(() => s.destroy())
  const dropped = collect('livery:cache:write_dropped', t) as Array<{ tier: string, reason: string }>
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) =>
    s.put(`k${i}`, makeEntry(`http://a.test/${i}`, Buffer.alloc(2048, 1)), 60_000)))
  t.equal(results.filter(Boolean).length, 16, 'the first 16 were accepted')
  t.equal(dropped.length, 84, 'the other 84 were refused and published')
  t.same(new Set(dropped.map(d => `${d.tier}:${d.reason}`)), new Set(['disk:queue_full']), 'with their tier and reason')
  t.equal(s.diskStats().writesDropped, 84, 'and counted')
  const warns = lines.map(l => JSON.parse(l) as { msg: string, dropped?: number, stack?: string, err?: unknown })
  t.equal(warns.length, 1, 'one log line for the whole burst')
  t.equal(warns[0]?.dropped, 1, 'the first drop is logged at once; the rest are summed into the next line')
  t.notOk(JSON.stringify(warns).includes('    at '), 'no stack trace')
})

// Issue 15: a count bound let 1,024 queued 60 KB writes hold 60 MB; what a backlog costs is its bytes.
t.test('pending writes are bounded in bytes: a put past maxPendingBytes is refused, and accepted again once the queue drains', async (t) => {
  const dir = t.testdir()
  const s = await DiskStore.open({ directory: dir, maxSize: 64 * 1024 * 1024, maxPendingBytes: 100_000 })
  t.teardown(() => s.destroy())
  const dropped = collect('livery:cache:write_dropped', t) as Array<{ reason: string }>
  // Issued in one turn of the event loop: none of them can have finished.
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) =>
    s.put(`k${i}`, makeEntry(`http://a.test/${i}`, Buffer.alloc(10_000, 3)), 60_000)))
  const accepted = results.filter(Boolean).length
  // Each file is the 10,000 B body plus a few hundred bytes of head: nine fit in 100,000 B, ten do not.
  t.equal(accepted, 9, 'as many as fit in 100,000 pending bytes were accepted')
  t.same(results.slice(0, 9), Array(9).fill(true), 'the first ones, in order')
  t.equal(dropped.length, 41, 'the rest were refused')
  t.ok(dropped.every(d => d.reason === 'queue_full'), 'as queue_full')
  t.equal((await entryBytes(dir)).files.length, 9, 'only the accepted ones have files')
  t.equal(await s.put('later', makeEntry('http://a.test/later', Buffer.alloc(10_000, 4)), 60_000), true, 'once the queue drained, a put is accepted again')
  // A single entry larger than the bound is still written when nothing waits: the bound limits the backlog, not the entry size.
  t.equal(await s.put('big', makeEntry('http://a.test/big', Buffer.alloc(200_000, 5)), 60_000), true, 'an entry larger than the bound is accepted when the queue is empty')
})

// Issue 15, item 8: one large entry among thousands of small files must not evict them all in one turn.
t.test('a put evicts at most EVICTIONS_PER_PUT files; a large one is refused until the room is made', async (t) => {
  const { EVICTIONS_PER_PUT } = await import('../../src/cache/disk-store.ts')
  const maxSize = 256 * 1024
  const s = await DiskStore.open({ directory: t.testdir(), maxSize, maxEntrySize: 200 * 1024 })
  t.teardown(() => s.destroy())
  for (let i = 0; i < 800; i += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, j) => s.put(`s${i + j}`, makeEntry(`http://a.test/s/${i + j}`, Buffer.alloc(100, 1)), 60_000)))
  }
  const small = s.diskStats().entries
  t.ok(small > 2 * EVICTIONS_PER_PUT, `the tier is full of small files (${small})`)
  const evictions = collect('livery:cache:eviction', t)
  const dropped = collect('livery:cache:write_dropped', t) as Array<{ reason: string }>
  const perPut: number[] = []
  let stored = false
  for (let attempt = 0; attempt < 20 && !stored; attempt++) {
    const before = evictions.length
    stored = await s.put('big', makeEntry('http://a.test/big', Buffer.alloc(190 * 1024, 2)), 60_000)
    perPut.push(evictions.length - before)
    t.ok(s.diskStats().bytes <= maxSize, 'within maxSize')
  }
  t.ok(stored, `the large entry was stored after ${perPut.length} puts`)
  t.ok(perPut.length > 1, 'not by the first put: it would have had to evict more than EVICTIONS_PER_PUT files')
  t.ok(perPut.every(n => n <= EVICTIONS_PER_PUT), `no put evicted more than ${EVICTIONS_PER_PUT} files (${perPut.join(', ')})`)
  t.equal(dropped.length, perPut.length - 1, 'each refusal was counted')
  t.ok(dropped.every(d => d.reason === 'no_room'), 'as no_room')
  t.equal((await s.get('big'))?.body.length, 190 * 1024, 'and it reads back')
})

t.test('a hard purge or delete overtakes no write accepted before it', async (t) => {
  const dir = t.testdir()
  const s = await DiskStore.open({ directory: dir, maxSize: 64 * 1024 * 1024, maxParallelWrites: 2 })
  t.teardown(() => s.destroy())
  const puts = Array.from({ length: 200 }, (_, i) => s.put(`k${i}`, makeEntry(`http://a.test/${i % 2 === 0 ? 'even' : 'odd'}/${i}`, Buffer.alloc(1024, 2), { tags: i % 2 === 0 ? ['even'] : [] }), 60_000))
  const del = s.delete('k1')
  const purged = await s.purge({ tags: ['even'] })
  await Promise.all([...puts, del])
  t.equal(purged, 100, 'the purge counted the 100 pending writes it selected')
  for (const i of [0, 1, 2, 100, 198]) t.equal(await s.get(`k${i}`), undefined, `k${i} is gone`)
  for (const i of [3, 101, 199]) t.ok(await s.get(`k${i}`), `k${i} (not selected) is there`)
  const onDisk = await entryBytes(dir)
  t.equal(onDisk.files.length, 99, 'only the 99 unselected entries have files')
  t.equal(s.diskStats().bytes, onDisk.bytes, 'the accounting matches the disk')
})

t.test('a hard purge counts an entry once while a newer copy of it is being written', async (t) => {
  // The purge API answered "purged: 14" for 13 pages when a refreshed copy of
  // one was still on its way to disk (gateway-tiers/purge-api, idle run).
  const s = await DiskStore.open({ directory: t.testdir(), maxSize: 16 * 1024 * 1024 })
  t.teardown(() => s.destroy())
  t.ok(await s.put('k', makeEntry('http://a.test/k', Buffer.alloc(1024, 1)), 60_000), 'the first copy is on disk')
  const refresh = s.put('k', makeEntry('http://a.test/k', Buffer.alloc(1024, 2)), 60_000)
  t.equal(await s.purge({ urls: ['http://a.test/k'] }), 1, 'one entry purged')
  await refresh
  t.equal(await s.get('k'), undefined, 'and neither copy survives')
})

t.test('a process opening the directory leaves the writes of the others in it alone (issue 12)', async (t) => {
  // The processes of a gateway share the directory. A worker restarted after a
  // crash used to empty tmp/ while its siblings were writing there: their
  // writes in flight failed.
  const dir = t.testdir()
  const a = await DiskStore.open({ directory: dir, maxSize: 64 * 1024 * 1024 })
  t.teardown(() => a.destroy())
  const n = 300
  const puts = Promise.all(Array.from({ length: n }, (_, i) =>
    a.put(`k${i}`, makeEntry(`http://a.test/${i}`, Buffer.alloc(4096, i % 251)), 60_000)))
  const b = await DiskStore.open({ directory: dir, maxSize: 64 * 1024 * 1024 })
  t.teardown(() => b.destroy())
  const results = await puts
  t.equal(a.diskStats().writeErrors, 0, 'no write of the first process failed')
  t.equal(results.filter(Boolean).length, n, `all ${n} puts were written`)
  t.equal((await entryBytes(dir)).files.length, n, 'one file per entry')
})
