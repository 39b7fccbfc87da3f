/** Coalescing through a real gateway and a real loopback upstream. */
import t from 'tap'
import { fixture } from './fixture.ts'
import { Coalescer, Lock } from '../../src/cache/coalesce.ts'

t.test('1,000 concurrent misses for one cold cacheable key make 1 upstream request', async (t) => {
  const f = await fixture(t, {
    '/hot': (_q, res) => { setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end('shared body'), 150).unref() }
  })
  const rs = await Promise.all(Array.from({ length: 1000 }, () => f.get('/hot')))
  t.equal(f.hits('/hot'), 1, 'exactly one upstream request')
  t.ok(rs.every((r) => r.status === 200 && r.body === 'shared body'), 'every client got the body')
  t.equal(rs.filter((r) => r.headers['x-cache'] === 'MISS').length, 1, 'one MISS (the leader), the rest shared it')
  t.same(f.cache.stats().inFlight, 0, 'the waiting list emptied')
})

t.test('uncacheable: waiters are released at header time and go in parallel; then hit-for-miss', async (t) => {
  const latency = 1000
  const f = await fixture(t, {
    '/warm': (_q, res) => res.writeHead(200, { 'cache-control': 'no-store' }).end('w'),
    '/private': (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'private' })
      res.write('a')
      setTimeout(() => res.end('b'), latency).unref()
    }
  })
  // Baseline: the cost of 1,000 requests through this harness with no upstream latency
  // (first burst opens the connections; the second is measured).
  await Promise.all(Array.from({ length: 1000 }, () => f.get('/warm')))
  let start = performance.now()
  await Promise.all(Array.from({ length: 1000 }, () => f.get('/warm')))
  const base = performance.now() - start
  start = performance.now()
  const first = await Promise.all(Array.from({ length: 1000 }, () => f.get('/private')))
  const firstMs = performance.now() - start
  t.equal(f.hits('/private'), 1000, 'every request went upstream')
  t.ok(first.every((r) => r.body === 'ab'))
  t.ok(firstMs < base + latency * 2, `first burst took ${firstMs.toFixed(0)} ms vs ${base.toFixed(0)} ms without latency (no request waited behind another's body)`)
  start = performance.now()
  await Promise.all(Array.from({ length: 1000 }, () => f.get('/private')))
  const secondMs = performance.now() - start
  t.equal(f.hits('/private'), 2000)
  t.ok(secondMs < base + latency * 2, `second burst (hit-for-miss) took ${secondMs.toFixed(0)} ms vs ${base.toFixed(0)} ms`)
  t.equal(f.cache.stats().hitForMiss, 2, 'both uncacheable keys are remembered as hit-for-miss')
})

t.test('lock timeout: a waiter goes upstream alone', async (t) => {
  const f = await fixture(t, {
    '/slow': (_q, res, n) => {
      const delay = n === 1 ? 2000 : 0
      setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end(`v${n}`), delay).unref()
    }
  }, {}, { lockTimeout: 200 })
  const leader = f.get('/slow')
  await new Promise<void>((resolve) => setImmediate(resolve))
  while (f.hits('/slow') === 0) await new Promise<void>((resolve) => setTimeout(resolve, 5))
  const start = performance.now()
  const waiter = await f.get('/slow')
  const ms = performance.now() - start
  t.equal(waiter.body, 'v2', 'the waiter fetched on its own')
  t.ok(ms < 1500, `after the lock timeout, not the leader (${ms.toFixed(0)} ms)`)
  t.equal((await leader).body, 'v1')
})

t.test('Coalescer unit: abort, bounds, close', async (t) => {
  const c = new Coalescer<string>({ lockTimeout: 60_000, hitForMiss: 1000, maxWaiters: 1 })
  const lock = c.acquire('k')
  t.ok(lock instanceof Lock, 'first caller leads')
  const ac = new AbortController()
  const w = c.acquire('k', ac.signal)
  t.ok(w instanceof Promise, 'second waits')
  t.equal(c.acquire('k'), undefined, 'over maxWaiters goes alone')
  ac.abort()
  t.same(await w, { kind: 'aborted' }, 'an aborted waiter stops waiting')
  t.equal(c.stats().waiting, 0)
  const w2 = c.acquire('k')
  ;(lock as Lock<string>).release('value')
  t.same(await w2, { kind: 'done', value: 'value' })
  t.equal(c.stats().inFlight, 0)
  c.markHitForMiss('h')
  t.equal(c.acquire('h'), undefined, 'hit-for-miss goes alone')
  const l2 = c.acquire('z')
  const w3 = c.acquire('z')
  c.close()
  t.same(await w3, { kind: 'timeout' }, 'close releases waiters')
  t.ok(l2 instanceof Lock)
})
