/**
 * Bulkheads through the real gateway: site A's upstream hangs with 200
 * clients waiting on it, and site B, on the same gateway, keeps answering at
 * its normal latency. A's clients all get the configured answers: 50 run into
 * the deadline (504), 100 time out in the queue (503), 50 find the queue full
 * (503), and every upstream socket A opened is closed again.
 */
import t from 'tap'
import { startUpstream } from '../helpers/servers.ts'
import { startGateway } from '../helpers/servers.ts'
import { get, header, startHangingUpstream, tally, type Reply } from './fixture.ts'

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

t.test('a hanging upstream fills only its own site\'s slots', async t => {
  const hanging = await startHangingUpstream(t)
  const healthy = await startUpstream(t, (_req, res) => {
    // no-store: every request of B is a miss that needs a pool slot, like A's.
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end('b')
  })
  const fx = await startGateway(t, {
    raw: {
      log: { level: 'info', access: false },
      sites: [
        { name: 'a', hosts: ['a.test'], upstream: hanging.url, pool: { maxConcurrent: 50, maxQueue: 100, queueTimeout: '1s', requestTimeout: '2s', killAfter: '2s' } },
        { name: 'b', hosts: ['b.test'], upstream: healthy.url },
      ],
    },
  })

  const baseline: number[] = []
  for (let i = 0; i < 20; i++) {
    const r = await get(fx.agent, fx.url, 'b.test', `/warm/${i}`)
    t.equal(r.status, 200)
    baseline.push(r.ms)
  }

  // Distinct paths: identical misses would be coalesced into one upstream request.
  const started = performance.now()
  const clients: Array<Promise<Reply>> = []
  for (let i = 0; i < 200; i++) clients.push(get(fx.agent, fx.url, 'a.test', `/hang/${i}`))
  await hanging.untilReceived(50)
  t.same(fx.gateway.pool.stats().inFlight, { a: 50, b: 0 }, 'site A holds all 50 of its slots')

  const during: number[] = []
  for (let i = 0; i < 30; i++) {
    const r = await get(fx.agent, fx.url, 'b.test', `/b/${i}`)
    t.equal(r.status, 200, 'site B answers')
    during.push(r.ms)
  }
  const stats = fx.gateway.pool.stats()
  t.equal(stats.inFlight.a, 50, 'site A was still stuck while B was measured')
  t.ok(performance.now() - started < 1000, 'B was measured before any of A\'s queued clients gave up')
  t.comment(`site B latency: baseline median ${median(baseline).toFixed(1)} ms, while A hangs median ${median(during).toFixed(1)} ms, max ${Math.max(...during).toFixed(1)} ms`)
  // Bounds loose enough for a shared 2-core machine; a B request that queued
  // behind A would take at least A's 1 s queue timeout or end in 503.
  t.ok(median(during) < Math.max(50, 3 * median(baseline)), 'B\'s median latency stays near its baseline')
  t.ok(Math.max(...during) < 1000, 'no B request waited behind A')

  const replies = await Promise.all(clients)
  t.same(tally(replies), {
    '503 LIVERY_ERR_QUEUE_FULL': 50,
    '503 LIVERY_ERR_QUEUE_TIMEOUT': 100,
    '504 LIVERY_ERR_DEADLINE': 50,
  }, 'A\'s clients get the configured answers')
  t.ok(replies.filter(r => r.status === 503).every(r => header(r, 'retry-after') === '1'), 'every 503 carries Retry-After')
  const deadline = replies.filter(r => r.status === 504)
  t.ok(deadline.every(r => r.ms >= 1900), 'the 504s came at the 2 s deadline')
  t.equal(hanging.received.length, 50, 'only A\'s 50 slots reached its upstream')
  await hanging.untilAllClosed()
  t.pass('every upstream socket of A was closed')
  t.same(fx.gateway.pool.stats().inFlight, { a: 0, b: 0 }, 'A\'s slots are free again')
  t.equal((await get(fx.agent, fx.url, 'b.test', '/after')).status, 200)
})
