// Size cap, the three timeouts, waits measured from the job's start, the
// queue bound, close/destroy, the lock seam and decoding.
import t from 'tap'
import { gzipSync } from 'node:zlib'
import type { ServerResponse } from 'node:http'
import { hasCode } from '../../src/errors.ts'
import type { FetchLock } from '../../src/fetcher/index.ts'
import { atOnce, collect, config, fakeClock, hang, makePool, ok, settlesWithin, startServer, timed } from './helpers.ts'

t.test('body size cap, declared or streamed', async t => {
  const big = 'x'.repeat(2048)
  const server = await startServer(t, (req, res) => {
    if (req.url === '/declared') { res.writeHead(200, { 'content-length': String(big.length) }); res.end(big); return }
    res.writeHead(200) // chunked: the pool has to count
    res.write(big.slice(0, 1000))
    setImmediate(() => res.end(big.slice(1000)))
  })
  const pool = makePool(t, config({ maxSize: 1024 }))
  await t.rejects(pool.get(server.url('/declared')), { code: 'LIVERY_ERR_FETCH_TOO_LARGE', message: /1024 bytes limit/ })
  await t.rejects(pool.get(server.url('/streamed')), { code: 'LIVERY_ERR_FETCH_TOO_LARGE' })
  t.equal(pool.stats().circuits[server.origin], 'closed', 'a too-large body does not count against the origin')
})

// undici runs its header and body timers on a coarse (~0.5–1 s) clock, so the
// first-byte and between-bytes cases allow for that; the total deadline is a
// native timer and precise.
t.test('first-byte, between-bytes and total timeouts', async t => {
  const trickle: ServerResponse[] = []
  const server = await startServer(t, (req, res) => {
    if (req.url === '/no-headers') return
    res.writeHead(200)
    res.write('first chunk')
    if (req.url === '/trickle') trickle.push(res) // the test keeps it busy below
  })
  const timers: NodeJS.Timeout[] = []
  t.teardown(() => { for (const x of timers) clearInterval(x) })
  const pool = makePool(t, config({ missWait: 5000, timeouts: { connect: 1000, firstByte: 200, betweenBytes: 200, total: 3000 } }))
  const timeouts = collect(t, 'livery:fetch:timeout')

  const both = [timed(() => pool.get(server.url('/no-headers'))), timed(() => pool.get(server.url('/stalls')))]
  // The jobs' total deadline timers (3 s) start inside get(), before these.
  const inTime = both.map(p => settlesWithin(p, 3000))
  const [first, between] = await Promise.all(both)
  t.ok(hasCode(first.error, 'LIVERY_ERR_FETCH_TIMEOUT'), 'coded')
  t.match((first.error as Error).message, /no response headers within 200 ms/)
  t.ok(await inTime[0], `first-byte timeout after ${first.ms.toFixed(0)} ms, before the total deadline`)
  t.match((between.error as Error).message, /no body bytes for 200 ms/)
  t.ok(await inTime[1], `between-bytes timeout after ${between.ms.toFixed(0)} ms, before the total deadline`)
  t.same(timeouts.map(m => (m as { phase: string }).phase).sort(), ['betweenBytes', 'firstByte'])
  t.equal(pool.stats().circuits[server.origin], 'closed', 'two failures are below the threshold')
})

t.test('the total deadline ends a job that keeps trickling bytes', async t => {
  const trickle: ServerResponse[] = []
  const server = await startServer(t, (_req, res) => {
    res.writeHead(200)
    res.write('first chunk')
    trickle.push(res)
  })
  // Bytes every 50 ms keep the between-bytes timer happy; only the total deadline ends it.
  const timer = setInterval(() => { for (const res of trickle) res.write('.') }, 50)
  t.teardown(() => clearInterval(timer))
  const pool = makePool(t, config({ missWait: 2000, timeouts: { connect: 1000, firstByte: 1000, betweenBytes: 1000, total: 300 } }))
  const timeouts = collect(t, 'livery:fetch:timeout')
  const pending = timed(() => pool.get(server.url('/trickle')))
  // The job's deadline timer starts inside get(), before this one of the same length.
  const inTime = settlesWithin(pending, 300)
  const total = await pending
  t.match((total.error as Error).message, /total deadline of 300 ms/)
  t.ok(total.ms >= 290, `total deadline after ${total.ms.toFixed(0)} ms, not before`)
  t.ok(await inTime, 'ended by the deadline timer itself, not later')
  t.same(timeouts.map(m => (m as { phase: string }).phase), ['total'])
})

t.test('waits are measured from the job start, not the caller\'s arrival', async t => {
  const server = await startServer(t, ok('v1'))
  const clock = fakeClock()
  const cfg = config({ wait: 100, missWait: 300 })
  const pool = makePool(t, cfg, { now: clock.now })
  const url = server.url('/theme.html')
  await pool.get(url)
  server.handle(hang)
  clock.advance(cfg.ttl)

  const early = timed(() => pool.get(url)) // starts the refresh job
  clock.advance(60)
  const midPending = timed(() => pool.get(url))
  // Its wait timer (the remaining 40 ms) starts inside get(), before this one.
  const inTime = settlesWithin(midPending, 40)
  const mid = await midPending
  t.equal(mid.value?.state, 'stale')
  t.ok(mid.ms >= 35, `joined 60 ms into the job: waited ${mid.ms.toFixed(0)} ms, not less than the remaining 40`)
  t.ok(await inTime, 'and no more than the remaining 40: settled before a 40 ms timer started after it')
  t.ok((await early).ms >= 95, 'the first caller waited the full window')
  clock.advance(40)
  const late = await atOnce(() => pool.get(url))
  t.ok(late.value?.state === 'stale' && late.settled, 'arriving after the window: stale at once')

  const cold = server.url('/cold.html')
  const first = timed(() => pool.get(cold))
  clock.advance(cfg.missWait)
  const after = await atOnce(() => pool.get(cold))
  t.ok(hasCode(after.error, 'LIVERY_ERR_FETCH_WAIT') && after.settled, 'no copy, missWait already spent: error at once')
  t.ok(hasCode((await first).error, 'LIVERY_ERR_FETCH_WAIT'))
})

t.test('the queue is bounded: beyond maxQueued a job is refused at once', async t => {
  const server = await startServer(t, hang)
  const pool = makePool(t, config({ concurrency: 1, missWait: 50 }), { maxQueued: 1 })
  const a = pool.get(server.url('/a'))
  const b = pool.get(server.url('/b'))
  const c = await atOnce(() => pool.get(server.url('/c')))
  t.ok(hasCode(c.error, 'LIVERY_ERR_FETCH_QUEUE_FULL') && c.settled, 'third job refused at once')
  t.same([pool.stats().jobsInFlight, pool.stats().jobsQueued], [1, 1])
  await t.rejects(a, { code: 'LIVERY_ERR_FETCH_WAIT' })
  await t.rejects(b, { code: 'LIVERY_ERR_FETCH_WAIT' })
  await pool.destroy()
  t.same([pool.stats().jobsInFlight, pool.stats().jobsQueued], [0, 0], 'destroy aborted the running and the queued job')
  t.equal(server.connections, 1, 'one connection for one slot')
  await t.rejects(pool.get(server.url('/a')), { code: 'LIVERY_ERR_CLOSED' })
})

t.test('queued jobs take free slots in FIFO order', async t => {
  const held: ServerResponse[] = []
  const server = await startServer(t, (_req, res) => { held.push(res) })
  const pool = makePool(t, config({ concurrency: 1 }))
  const gets = ['/a', '/b', '/c'].map(p => pool.get(server.url(p)))
  for (let n = 1; n <= 3; n++) {
    await server.requestCount(n)
    t.same([pool.stats().jobsInFlight, pool.stats().jobsQueued], [1, 3 - n], `job ${n} running, the rest queued`)
    held[n - 1].end(`body ${n}`)
  }
  t.same(server.requests.map(r => r.url), ['/a', '/b', '/c'])
  t.same((await Promise.all(gets)).map(o => o.resource.body.toString()), ['body 1', 'body 2', 'body 3'])
  t.equal(server.connections, 1, 'one keep-alive connection for one slot')
})

t.test('jobs queued behind the failure that opens the circuit end without a request', async t => {
  const server = await startServer(t, req => { req.socket.destroy() })
  const pool = makePool(t, config({ concurrency: 1, circuit: { failures: 1, coolDown: 1000, maxCoolDown: 1000 } }))
  const results = await Promise.allSettled([pool.get(server.url('/a')), pool.get(server.url('/b')), pool.get(server.url('/c'))])
  t.match(results.map(r => r.status === 'rejected' ? (r.reason as { code: string }).code : r.status),
    ['LIVERY_ERR_FETCH', 'LIVERY_ERR_FETCH_CIRCUIT_OPEN', 'LIVERY_ERR_FETCH_CIRCUIT_OPEN'])
  t.equal(server.requests.length, 1)
  t.same([pool.stats().jobsInFlight, pool.stats().jobsQueued], [0, 0])
})

t.test('close waits for running jobs and cancels queued ones', async t => {
  const held: ServerResponse[] = []
  const server = await startServer(t, (_req, res) => { held.push(res) })
  const pool = makePool(t, config({ concurrency: 1 }))
  const running = pool.get(server.url('/running'))
  const queued = pool.get(server.url('/queued'))
  await server.requestCount(1)
  const closing = pool.close()
  await t.rejects(queued, { code: 'LIVERY_ERR_CLOSED' }, 'queued job cancelled')
  held[0].end('done')
  await closing
  t.equal((await running).resource.body.toString(), 'done', 'running job finished')
  t.equal(server.requests.length, 1)
})

t.test('the lock seam wraps the network part of every job', async t => {
  const server = await startServer(t, ok('x'))
  const keys: string[] = []
  const lock: FetchLock = { run: async (key, _signal, fetch) => { keys.push(key); return await fetch() } }
  const pool = makePool(t, config(), { lock })
  await Promise.all([pool.get(server.url('/a')), pool.get(server.url('/a')), pool.get(server.url('/b'))])
  t.same(keys, [server.url('/a'), server.url('/b')])
})

t.test('a lock hook that ignores the signal still cannot hold a slot past the deadline', async t => {
  // The pool's timers are unref'd; the server is what keeps this process alive meanwhile, as the gateway's does.
  const server = await startServer(t, hang)
  const lock: FetchLock = { run: () => new Promise(() => {}) }
  const pool = makePool(t, config({ concurrency: 1, missWait: 2000, timeouts: { connect: 1000, firstByte: 1000, betweenBytes: 1000, total: 100 } }), { lock })
  await t.rejects(pool.get(server.url('/never')), { code: 'LIVERY_ERR_FETCH_TIMEOUT', message: /total deadline of 100 ms/ })
  t.same([pool.stats().jobsInFlight, pool.stats().jobsQueued], [0, 0], 'slot freed')
  t.equal(server.requests.length, 0, 'the lock kept the request from being made')
})

t.test('compressed bodies are decoded, redirects are failures, bad URLs are refused', async t => {
  const server = await startServer(t, (req, res) => {
    if (req.url === '/gz') { res.writeHead(200, { 'content-encoding': 'gzip' }); res.end(gzipSync('hello')); return }
    if (req.url === '/bomb') { res.writeHead(200, { 'content-encoding': 'gzip' }); res.end(gzipSync(Buffer.alloc(4096))); return }
    res.writeHead(302, { location: '/gz' })
    res.end()
  })
  const pool = makePool(t, config({ maxSize: 1024 }))
  const gz = await pool.get(server.url('/gz'))
  t.equal(gz.resource.body.toString(), 'hello')
  t.equal(gz.resource.headers['content-encoding'], undefined)
  await t.rejects(pool.get(server.url('/bomb')), { code: 'LIVERY_ERR_FETCH_TOO_LARGE' }, 'the cap applies after decoding')
  await t.rejects(pool.get(server.url('/moved')), { code: 'LIVERY_ERR_FETCH_STATUS', message: /answered 302/ })
  await t.rejects(pool.get('/relative'), { code: 'LIVERY_ERR_FETCH' })
  await t.rejects(pool.get('file:///etc/passwd'), { code: 'LIVERY_ERR_FETCH', message: /only http and https/ })
  t.equal(pool.peek('not a url'), undefined)
})
