/**
 * Issue 15, item 6: a key known uncacheable (hit-for-miss) goes upstream
 * without asking the tiers below memory. Before, every pass request of such
 * a key missed memory and then asked the disk tier (a sha256 of the key and
 * an index lookup), for an answer that was nothing: the lookup treated a
 * memory miss as "ask the next tier" whatever it knew about the key.
 * Counted with the tiered store's own `readsBelow`, through a real gateway
 * (cacheHandler), a real upstream and a real disk tier.
 */
import t, { type Test } from 'tap'
import { HttpCache } from '../../src/cache/http-cache.ts'
import { MemoryStore } from '../../src/cache/memory-store.ts'
import { DiskStore } from '../../src/cache/disk-store.ts'
import { TieredStore } from '../../src/cache/tiered-store.ts'
import { request } from 'undici'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { agent, cacheConfig, cacheHandler, listen, site } from './helpers.ts'

interface Setup {
  readonly cache: HttpCache
  readonly memory: MemoryStore
  readonly store: TieredStore
  get: (path: string, headers?: Record<string, string>) => Promise<{ status: number, xcache: unknown, body: string }>
  hits: (path: string) => number
}

async function setup (t: Test, routes: Record<string, (req: IncomingMessage, res: ServerResponse, n: number) => void>): Promise<Setup> {
  const counts = new Map<string, number>()
  const up = await listen(t, (req, res) => {
    const path = req.url ?? '/'
    const n = (counts.get(path) ?? 0) + 1
    counts.set(path, n)
    routes[path](req, res, n)
  })
  const memory = new MemoryStore({ maxSize: 16 * 1024 * 1024, maxEntrySize: 1024 * 1024 })
  const disk = await DiskStore.open({ directory: t.testdir(), maxSize: 16 * 1024 * 1024 })
  const store = new TieredStore({ tiers: [memory, disk] })
  const cache = new HttpCache(cacheConfig(), { store })
  t.teardown(() => cache.close())
  const a = agent(t)
  const gw = await listen(t, cacheHandler(cache, site(), up.origin, a))
  return {
    cache,
    memory,
    store,
    hits: (p) => counts.get(p) ?? 0,
    get: async (path, headers = {}) => {
      const r = await request(gw.origin + path, { headers: { host: 'demo.test', ...headers }, dispatcher: a })
      return { status: r.statusCode, xcache: r.headers['x-cache'], body: await r.body.text() }
    }
  }
}

t.test('a hit-for-miss key does not ask the disk tier', async (t) => {
  const s = await setup(t, {
    '/private': (_q, res, n) => { res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(`p${n}`) }
  })
  t.equal((await s.get('/private')).body, 'p1')
  t.equal(s.store.readsBelow, 1, 'the first lookup did not know the key: it asked the disk tier')
  t.equal(s.cache.stats().hitForMiss, 1, 'the no-store answer made the key hit-for-miss')
  for (let i = 2; i <= 20; i++) {
    const r = await s.get('/private')
    t.equal(r.body, `p${i}`, `request ${i} went upstream`)
  }
  t.equal(s.hits('/private'), 20)
  t.equal(s.store.readsBelow, 1, 'the next 19 lookups never left memory')
  const looked = s.cache.lookup({ method: 'GET', url: '/private', host: 'demo.test', headers: {} }, site())
  t.notOk(looked instanceof Promise, 'the lookup answers synchronously')
  t.equal((looked as { kind: string }).kind, 'miss', 'a miss going upstream alone')
  if (!(looked instanceof Promise) && looked.kind === 'miss') looked.fill.fail()
})

t.test('a copy below memory is still found by only-if-cached, and skipped by a normal request (Varnish hit-for-miss)', async (t) => {
  let cacheable = true
  const s = await setup(t, {
    '/flip': (_q, res, n) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': cacheable ? 'max-age=600' : 'no-store' }).end(`f${n}`)
    }
  })
  t.equal((await s.get('/flip')).body, 'f1')
  await s.store.settled()
  await s.memory.clear()
  cacheable = false
  // A reload revalidates the copy the disk tier holds; the answer is no-store, so the key turns hit-for-miss.
  const reload = await s.get('/flip', { 'cache-control': 'no-cache' })
  t.equal(reload.body, 'f2')
  t.equal(s.cache.stats().hitForMiss, 1)
  // The reload's read promoted the disk copy back into memory.
  await s.store.settled()
  await s.memory.clear()
  const before = s.store.readsBelow
  const stored = await s.get('/flip', { 'cache-control': 'only-if-cached' })
  t.equal(stored.status, 200, 'only-if-cached still finds the copy below memory')
  t.equal(stored.body, 'f1')
  t.equal(s.store.readsBelow, before + 1, 'by asking the disk tier')
  await s.store.settled()
  await s.memory.clear()
  const plain = await s.get('/flip')
  t.equal(plain.body, 'f3', 'a normal request goes upstream')
  t.equal(s.store.readsBelow, before + 1, 'without asking the disk tier')
})
