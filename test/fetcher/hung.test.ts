// A theme server that accepts connections and never answers must delay only
// the first `wait` window, and never get more than `concurrency` connections.
import t from 'tap'
import { hasCode } from '../../src/errors.ts'
import { atOnce, collect, config, fakeClock, hang, makePool, next, ok, settlesWithin, startServer, timed } from './helpers.ts'

t.test('with stale copies: 50 concurrent gets resolve within wait + 50 ms; connections stay within concurrency', async t => {
  const server = await startServer(t, ok('<html>v1</html>'))
  const clock = fakeClock()
  // missWait stays a safety net: the warm-up below fetches from a healthy server.
  const cfg = config({ concurrency: 4, wait: 100 })
  const pool = makePool(t, cfg, { now: clock.now })
  const urls = Array.from({ length: 8 }, (_, i) => server.url(`/theme-${i}.html`))
  for (const url of urls) await pool.get(url)
  t.equal(server.requests.length, 8, 'warm-up fetched every URL')

  server.handle(hang)
  clock.advance(cfg.ttl + 1) // every copy is now stale, well within staleWhileRevalidate
  const stale = collect(t, 'livery:fetch:stale_served')
  // Every get starts its wait timer before settlesWithin starts its own of the
  // same length, so "within wait" is an ordering, whatever the machine's load.
  const all = Promise.all(Array.from({ length: 50 }, (_, i) => timed(() => pool.get(urls[i % urls.length]))))
  const inTime = settlesWithin(all, cfg.wait)
  const results = await all
  t.comment(`slowest get ${Math.max(...results.map(r => r.ms)).toFixed(0)} ms (wait ${cfg.wait})`)
  t.ok(await inTime, 'all 50 gets resolved no later than a timer of `wait` started after them')
  for (const r of results) {
    t.equal(r.error, undefined, 'no error')
    t.equal(r.value?.state, 'stale')
    t.equal(r.value?.resource.body.toString(), '<html>v1</html>')
  }
  t.equal(stale.length, 50, 'every caller got the stale copy and it was counted')
  t.ok(server.connections <= cfg.concurrency, `server saw ${server.connections} connections (limit ${cfg.concurrency})`)
  t.same(pool.stats().jobsInFlight, 4, 'four jobs hold the four slots')
  t.same(pool.stats().jobsQueued, 4, 'the other four jobs wait in the queue')

  // Callers arriving after the jobs ran longer than `wait` do not wait again.
  clock.advance(cfg.wait)
  const late = await Promise.all(urls.map(url => atOnce(() => pool.get(url))))
  for (const r of late) {
    t.equal(r.value?.state, 'stale')
    t.ok(r.settled, 'at once')
  }
  t.ok(server.connections <= cfg.concurrency, 'still no more connections')
})

t.test('without a copy: get rejects within missWait with a coded error', async t => {
  const server = await startServer(t, hang)
  const cfg = config({ missWait: 300 })
  const pool = makePool(t, cfg)
  const first = performance.now()
  const all = Promise.all(Array.from({ length: 10 }, () => {
    const offset = performance.now() - first
    return timed(() => pool.get(server.url('/cold.html'))).then(r => ({ ...r, sinceFirst: offset + r.ms }))
  }))
  const inTime = settlesWithin(all, cfg.missWait)
  const results = await all
  t.ok(await inTime, 'all 10 rejected no later than a timer of `missWait` started after them')
  for (const r of results) {
    t.ok(hasCode(r.error, 'LIVERY_ERR_FETCH_WAIT'), 'LIVERY_ERR_FETCH_WAIT')
    // A lower bound holds on any machine, timers never fire early; but the wait is
    // bounded from the job's start (the first call), so it is measured from there:
    // a caller that joined later, on a busy machine, waits correspondingly less.
    t.ok(r.sinceFirst >= cfg.missWait - 5, `rejected ${r.sinceFirst.toFixed(0)} ms after the first call, not before missWait`)
  }
  t.equal(server.requests.length, 1, 'one job for all callers')
})

t.test('a hung job ends at its total deadline and frees its slot', async t => {
  const server = await startServer(t, hang)
  const cfg = config({ concurrency: 1, missWait: 50, timeouts: { connect: 1000, firstByte: 5000, betweenBytes: 5000, total: 200 } })
  const pool = makePool(t, cfg)
  const timeouts = collect(t, 'livery:fetch:timeout')
  const ended = next('livery:fetch:error')
  await t.rejects(pool.get(server.url('/a')), { code: 'LIVERY_ERR_FETCH_WAIT' })
  t.equal(pool.stats().jobsInFlight, 1)
  t.match(await ended, { code: 'LIVERY_ERR_FETCH_TIMEOUT' })
  t.match(timeouts, [{ phase: 'total' }])
  t.equal(pool.stats().jobsInFlight, 0, 'slot freed')
  // The failure is remembered for minTtl: callers get it at once, no new request.
  const again = await atOnce(() => pool.get(server.url('/a')))
  t.ok(hasCode(again.error, 'LIVERY_ERR_FETCH_TIMEOUT'), 'the last error is served at once')
  t.ok(again.settled, 'at once')
  t.equal(server.requests.length, 1)
})
