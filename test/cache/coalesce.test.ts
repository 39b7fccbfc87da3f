/** Coalescing through a real gateway and a real loopback upstream. */
import t from 'tap'
import type { ServerResponse } from 'node:http'
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
  // Each body is held open (after its first byte) until all N requests of a
  // burst are in flight at the upstream at once, or a 30 s safety cap. A
  // waiter kept behind the leader's body, or any request behind another's,
  // would keep that count below N: only the cap could end the burst. This
  // replaces "the burst took less than the baseline + 2 latencies", which
  // compared two wall-clock runs on a busy machine (issue 10).
  const N = 1000
  let held: ServerResponse[] = []
  let peak = 0
  let cappedBursts = 0
  let cap: NodeJS.Timeout | undefined
  const release = (): void => {
    clearTimeout(cap)
    cap = undefined
    for (const res of held) res.end('b')
    held = []
  }
  t.teardown(release)
  const f = await fixture(t, {
    '/warm': (_q, res) => res.writeHead(200, { 'cache-control': 'no-store' }).end('w'),
    '/private': (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'private' })
      res.write('a')
      held.push(res)
      peak = Math.max(peak, held.length)
      cap ??= setTimeout(() => { cappedBursts++; release() }, 30_000)
      if (held.length === N) release()
    }
  })
  t.equal((await f.get('/warm')).body, 'w', 'a no-store response')
  const first = await Promise.all(Array.from({ length: N }, () => f.get('/private')))
  t.equal(f.hits('/private'), N, 'every request went upstream')
  t.ok(first.every((r) => r.body === 'ab'))
  t.equal(peak, N, `all ${N} were in flight at once: the waiters went upstream at the leader's headers, not after its body`)
  peak = 0
  await Promise.all(Array.from({ length: N }, () => f.get('/private')))
  t.equal(f.hits('/private'), 2 * N)
  t.equal(peak, N, `second burst (hit-for-miss): all ${N} in flight at once`)
  t.equal(cappedBursts, 0, 'no burst needed the safety cap')
  t.equal(f.cache.stats().hitForMiss, 2, 'both uncacheable keys are remembered as hit-for-miss')
})

t.test('lock timeout: a waiter goes upstream alone', async (t) => {
  // The leader's response is held until the waiter has had its own (or a
  // 30 s safety net): the waiter can only get v2 by not waiting for the leader.
  let leader: ServerResponse | undefined
  const safety = setTimeout(() => leader?.end('v1'), 30_000)
  t.teardown(() => { clearTimeout(safety); leader?.end() })
  const f = await fixture(t, {
    '/slow': (_q, res, n) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' })
      if (n === 1) leader = res
      else res.end(`v${n}`)
    }
  }, {}, { lockTimeout: 200 })
  const leading = f.get('/slow')
  while (f.hits('/slow') === 0) await new Promise<void>((resolve) => setTimeout(resolve, 5))
  const waiter = await f.get('/slow')
  t.equal(waiter.body, 'v2', 'the waiter fetched on its own')
  t.notOk(leader?.writableEnded, 'after the lock timeout, while the leader was still waiting for its upstream')
  leader?.end('v1')
  t.equal((await leading).body, 'v1')
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
