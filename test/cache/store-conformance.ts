/**
 * The store conformance suite, written once (STYLE §2.2). Every tier calls
 * `storeConformance(t, name, makeStore)`; `makeStore` returns a fresh, empty
 * store (and registers its own cleanup).
 */
import type { Test } from 'tap'
import { decodeEntry, encodeEntry, type CacheEntry } from '../../src/cache/entry.ts'
import type { CacheStore } from '../../src/cache/store.ts'
import { makeEntry } from './helpers.ts'

function same (t: Test, got: CacheEntry | undefined, want: CacheEntry, msg: string): void {
  t.ok(got, `${msg}: found`)
  if (got === undefined) return
  t.equal(got.status, want.status, `${msg}: status`)
  t.same(got.rawHeaders, want.rawHeaders, `${msg}: headers`)
  t.ok(got.body.equals(want.body), `${msg}: body`)
  t.same({ ...got.meta }, { ...want.meta }, `${msg}: meta`)
}

export function storeConformance (t: Test, name: string, makeStore: (t: Test) => Promise<CacheStore> | CacheStore): Promise<void> {
  return t.test(`${name} store conformance`, async (t) => {
    await t.test('put, get, overwrite, delete', async (t) => {
      const s = await makeStore(t)
      const e = makeEntry('http://a.test/1', 'one', { tags: ['x'], vary: ['accept'], varyValues: ['text/html'] })
      t.equal(await s.get('k1'), undefined, 'missing key is undefined')
      t.equal(await s.put('k1', e, 60_000), true, 'put accepted')
      same(t, await s.get('k1'), e, 'after put')
      const e2 = makeEntry('http://a.test/1', 'two')
      await s.put('k1', e2, 60_000)
      same(t, await s.get('k1'), e2, 'overwritten')
      t.equal(await s.delete('k1'), true, 'delete reports a removal')
      t.equal(await s.get('k1'), undefined, 'gone after delete')
      t.equal(await s.delete('k1'), false, 'second delete removes nothing')
    })

    await t.test('binary bodies and unicode metadata survive', async (t) => {
      const s = await makeStore(t)
      const body = Buffer.alloc(70_000)
      for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff
      const e = makeEntry('http://a.test/ünï?q=%00', body, { tags: ['tag with space', 'ü'] })
      await s.put('bin', e, 60_000)
      same(t, await s.get('bin'), e, 'binary entry')
      t.same(decodeEntry(encodeEntry(e)).meta, e.meta, 'the encoding round-trips too')
    })

    await t.test('ttl: zero is refused, short ttl expires', async (t) => {
      const s = await makeStore(t)
      t.equal(await s.put('z', makeEntry('http://a.test/z', 'z'), 0), false, 'ttl 0 refused')
      t.equal(await s.get('z'), undefined)
      await s.put('short', makeEntry('http://a.test/s', 's'), 30)
      const until = Date.now() + 2000
      let v = await s.get('short')
      while (v !== undefined && Date.now() < until) {
        await new Promise<void>((resolve) => setImmediate(resolve))
        v = await s.get('short')
      }
      t.equal(v, undefined, 'expired after its ttl')
    })

    await t.test('keys and purge by url, prefix, tag, site, all', async (t) => {
      const s = await makeStore(t)
      await s.put('1', makeEntry('http://a.test/p/1', '1', { tags: ['red'] }), 60_000)
      await s.put('1b', makeEntry('http://a.test/p/1', '1b'), 60_000)
      await s.put('2', makeEntry('http://a.test/p/2', '2', { tags: ['red', 'blue'] }), 60_000)
      await s.put('3', makeEntry('http://a.test/q/3', '3', { site: 'other' }), 60_000)
      await s.put('4', makeEntry('http://b.test/4', '4', { tags: ['blue'] }), 60_000)
      const keys: string[] = []
      for await (const k of s.keys()) keys.push(k)
      t.same(keys.sort(), ['1', '1b', '2', '3', '4'], 'keys lists every entry')
      t.equal(await s.purge({ urls: ['http://a.test/p/1'] }), 2, 'url purge hits every variant of the URL')
      t.equal(await s.get('1b'), undefined)
      t.equal(await s.purge({ tags: ['blue'] }), 2, 'tag purge')
      t.equal(await s.get('4'), undefined)
      t.equal(await s.purge({ site: 'other' }), 1, 'site purge')
      await s.put('5', makeEntry('http://a.test/p/5', '5'), 60_000)
      t.equal(await s.purge({ prefixes: ['http://a.test/p/'] }), 1, 'prefix purge')
      await s.put('6', makeEntry('http://a.test/6', '6'), 60_000)
      t.equal(await s.purge({ all: true }), 1, 'purge all')
      t.equal(await s.get('6'), undefined)
    })

    await t.test('soft purge marks stale but keeps the entry', async (t) => {
      const s = await makeStore(t)
      const e = makeEntry('http://a.test/soft', 'soft', { tags: ['t'] })
      await s.put('soft', e, 60_000)
      const now = Date.now()
      t.equal(await s.purge({ tags: ['t'] }, { soft: true, now }), 1)
      const got = await s.get('soft')
      t.ok(got, 'still there')
      t.ok(got !== undefined && got.meta.freshUntil <= now, 'no longer fresh')
      t.ok(got !== undefined && got.meta.staleUntil > now, 'servable stale while refreshing')
      t.ok(got?.body.equals(e.body), 'body kept')
    })

    await t.test('clear and close', async (t) => {
      const s = await makeStore(t)
      await s.put('c', makeEntry('http://a.test/c', 'c'), 60_000)
      await s.clear()
      t.equal(await s.get('c'), undefined, 'cleared')
      t.type(s.stats(), 'object')
      await s.close()
      await s.close()
      t.pass('close is idempotent')
      await t.rejects(s.get('c'), { code: 'LIVERY_ERR_CLOSED' }, 'calls after close fail typed')
    })
  }).then(() => undefined)
}
