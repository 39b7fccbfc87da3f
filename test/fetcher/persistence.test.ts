// Copies survive a restart with the origin down; corrupt files are skipped
// and reported; the directory stays bounded.
import t from 'tap'
import { readdir, readFile, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/log.ts'
import { hasCode } from '../../src/errors.ts'
import { decodeEntry, fileName } from '../../src/fetcher/store.ts'
import { collect, config, fakeClock, makePool, ok, startServer, tempDir } from './helpers.ts'

t.test('a restarted pool serves persisted copies with the origin down', async t => {
  const dir = tempDir(t)
  const server = await startServer(t, ok('<html>theme</html>', { etag: '"t1"', 'x-theme': 'a' }))
  const clock = fakeClock()
  const cfg = config()
  const a = makePool(t, cfg, { directory: dir, now: clock.now })
  await a.open()
  const url = server.url('/theme.html')
  const first = (await a.get(url)).resource
  await a.close()
  await t.rejects(a.get(url), { code: 'LIVERY_ERR_CLOSED' }, 'calls after close fail')
  await a.close() // idempotent

  const raw = await readFile(join(dir, fileName(url)))
  t.equal(raw.subarray(0, 4).toString('latin1'), 'LVFE', 'binary format with its magic')
  t.ok(raw.subarray(raw.length - first.body.length).equals(first.body), 'the body is stored as raw bytes at the end')
  await server.close()

  const b = makePool(t, cfg, { directory: dir, now: clock.now })
  await b.open()
  const fresh = await b.get(url)
  t.equal(fresh.state, 'fresh', 'still fresh by the same clock')
  t.same(fresh.resource, first, 'the same copy, headers, version and all')

  clock.advance(cfg.ttl + 1)
  const stale = await b.get(url)
  t.equal(stale.state, 'stale', 'origin down: refresh fails, stale copy served')
  t.equal(stale.resource.body.toString(), '<html>theme</html>')
})

t.test('corrupt files are skipped, reported and removed', async t => {
  const dir = tempDir(t)
  const server = await startServer(t, ok('body of the resource'))
  const cfg = config()
  const a = makePool(t, cfg, { directory: dir })
  const urls = ['/good', '/truncated', '/flipped', '/renamed'].map(p => server.url(p))
  for (const url of urls) await a.get(url)
  await a.close()

  await truncate(join(dir, fileName(urls[1])), 30)
  const flippedFile = join(dir, fileName(urls[2]))
  const buf = await readFile(flippedFile)
  buf[buf.length - 3] ^= 0xff
  await writeFile(flippedFile, buf)
  // A valid entry under another URL's name must not be served for that name.
  await writeFile(join(dir, fileName(urls[3])), await readFile(join(dir, fileName(urls[0]))))
  await writeFile(join(dir, `${fileName(urls[0])}.123.0.tmp`), 'leftover of a crash')
  t.throws(() => decodeEntry(buf), { code: 'LIVERY_ERR_CACHE_ENTRY_CORRUPT', message: /checksum/ })

  const lines: string[] = []
  const logger = createLogger({ level: 'warn', destination: new Writable({ write (chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb() } }) })
  const corrupt = collect(t, 'livery:fetch:corrupt')
  const b = makePool(t, cfg, { directory: dir, logger })
  await b.open()
  t.equal(b.stats().corruptFiles, 3)
  t.equal(corrupt.length, 3, 'each one published')
  t.equal(lines.filter(l => l.includes('corrupt')).length, 3, 'each one logged')
  t.equal(b.stats().entries, 1, 'the good one loaded')
  t.same((await readdir(dir)).sort(), [fileName(urls[0])], 'corrupt and temp files removed')
  t.equal(b.peek(urls[1]), undefined)
  t.equal((await b.get(urls[1])).state, 'fetched', 'a skipped entry is fetched again')
})

t.test('the directory is bounded by maxEntries (least recently used dropped)', async t => {
  const dir = tempDir(t)
  const server = await startServer(t, ok('x'))
  const pool = makePool(t, config(), { directory: dir, maxEntries: 2 })
  const urls = ['/1', '/2', '/3'].map(p => server.url(p))
  for (const url of urls) await pool.get(url)
  await pool.close()
  t.same((await readdir(dir)).sort(), [fileName(urls[1]), fileName(urls[2])].sort())
  t.equal(pool.stats().entries, 2)
})

t.test('a failing disk never fails a get', async t => {
  const dir = tempDir(t)
  const server = await startServer(t, ok('x'))
  const notADir = join(dir, 'file')
  await writeFile(notADir, 'x')
  const errors = collect(t, 'livery:fetch:persist_error')
  const pool = makePool(t, config(), { directory: notADir })
  await t.rejects(pool.open(), { code: 'LIVERY_ERR_CACHE_STORE', message: /fetch directory/ }, 'open reports an unusable directory')
  t.equal((await pool.get(server.url('/a'))).state, 'fetched')
  await pool.close()
  t.equal(pool.stats().persistErrors, 1)
  t.equal(errors.length, 1)
  t.ok(hasCode(await pool.open().catch((e: unknown) => e), 'LIVERY_ERR_CLOSED'))
})
