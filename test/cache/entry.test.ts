import t from 'tap'
import { decodeEntry, encodeEntry } from '../../src/cache/entry.ts'
import { Fill } from '../../src/cache/fill.ts'
import { makeEntry, site } from './helpers.ts'
import type { CacheEntry } from '../../src/cache/entry.ts'

t.test('binary format round-trips and detects torn writes', async (t) => {
  const e = makeEntry('http://a.test/x', Buffer.from([0, 1, 2, 255]), { tags: ['a', 'b'], vary: ['accept'], varyValues: ['\u0000'] })
  const buf = encodeEntry(e)
  const d = decodeEntry(buf, 'k', 'disk')
  t.same(d.rawHeaders, e.rawHeaders)
  t.ok(d.body.equals(e.body))
  t.same(d.meta, e.meta)
  t.equal(d.tier, 'disk')
  t.throws(() => decodeEntry(buf.subarray(0, buf.length - 3), 'k'), { code: 'LIVERY_ERR_CACHE_ENTRY_CORRUPT' }, 'truncated')
  const flipped = Buffer.from(buf)
  flipped[20] ^= 0xff
  t.throws(() => decodeEntry(flipped, 'k'), { code: 'LIVERY_ERR_CACHE_ENTRY_CORRUPT' }, 'a flipped byte fails the checksum')
  t.throws(() => decodeEntry(Buffer.from('{"json":true}'), 'k'), { code: 'LIVERY_ERR_CACHE_ENTRY_CORRUPT' }, 'not our format')
})

t.test('wire arrays: prebuilt once, only age and x-cache change', async (t) => {
  const e = makeEntry('http://a.test/x', 'hello')
  const w1 = e.wire('3', 'HIT')
  t.same(w1.slice(-4), ['age', '3', 'x-cache', 'HIT'])
  const w2 = e.wire('4', 'STALE')
  t.equal(w1, w2, 'the same array is reused')
  t.same(w2.slice(0, -4), [...e.rawHeaders, 'via', '1.1 livery'], 'the stored headers, plus Via naming this gateway (issue 11, item 12)')
  const nm = e.notModifiedWire('1', 'HIT')
  t.ok(nm.includes('etag') && !nm.includes('content-length') && !nm.includes('content-type'), '304 carries validators, not body metadata')
})

function host (stored: CacheEntry[]): ConstructorParameters<typeof Fill>[0]['host'] {
  return {
    now: Date.now,
    maxEntrySize: 1000,
    commit: async (_k, e) => { stored.push(e); return true },
    remove: async () => {},
    uncacheable: () => {},
    cacheable: () => {}
  }
}

t.test('a body longer or shorter than Content-Length is never stored', async (t) => {
  const stored: CacheEntry[] = []
  const mk = (): Fill => new Fill({ host: host(stored), key: 'k', primary: 'k', url: 'http://a.test/', site: site(), reqHeaders: {}, stale: undefined, noStore: false, lock: undefined, background: false })
  const headers = { 'cache-control': 'max-age=60', 'content-length': '10' }
  let f = mk()
  t.same(f.response(200, headers), { action: 'store', maxBytes: 1000 })
  t.equal(await f.finish(Buffer.alloc(5), true), undefined, 'shorter: refused')
  f = mk()
  f.response(200, headers)
  t.equal(await f.finish(Buffer.alloc(11), true), undefined, 'longer: refused')
  f = mk()
  f.response(200, headers)
  t.equal(await f.finish(Buffer.alloc(10), false), undefined, 'incomplete: refused')
  f = mk()
  f.response(200, headers)
  const e = await f.finish([Buffer.alloc(4), Buffer.alloc(6)], true)
  t.ok(e, 'exact length: stored')
  t.equal(stored.length, 1)
  f = mk()
  t.match(f.response(200, { 'cache-control': 'max-age=60', 'content-length': '5000' }), { action: 'pass' }, 'Content-Length over maxEntrySize passes at header time')
})
