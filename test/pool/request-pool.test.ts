import t from 'tap'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { once } from 'node:events'
import { Agent, request } from 'undici'
import { RequestPool, type Ticket } from '../../src/pool/index.ts'
import { hasCode } from '../../src/errors.ts'
import type { KilledMessage, QueueWaitMessage, ShedMessage } from '../../src/pool/channels.ts'
import { keepAlive, nextMessage, poolConfig, siteConfig } from './helpers.ts'

/** A clock the test moves by hand, so kill ages need no waiting. */
function manualClock (): { now: () => number, set: (ms: number) => void } {
  let current = 0
  return { now: () => current, set: (ms) => { current = ms } }
}

t.test('bulkhead: a saturated site does not hold back another', async t => {
  const pool = new RequestPool(poolConfig(), [
    siteConfig('a', { maxConcurrent: 4, maxQueue: 256 }),
    siteConfig('b', { maxConcurrent: 4 }),
  ])
  t.teardown(() => pool.destroy())
  const running = await Promise.all([1, 2, 3, 4].map(async () => await pool.acquire('a')))
  const order: number[] = []
  const waiting = Array.from({ length: 200 }, async (_, i) => {
    const ticket = await pool.acquire('a')
    order.push(i)
    return ticket
  })
  t.same(pool.stats().queued, { a: 200, b: 0 })

  const b = await pool.acquire('b')
  t.equal(b.queueWait, 0, 'site b is admitted at once')
  t.same(pool.stats().inFlight, { a: 4, b: 1 })
  b.release()

  for (const ticket of running) ticket.release()
  await Promise.all(waiting.slice(0, 4))
  t.same(order, [0, 1, 2, 3], 'freed slots go to waiters in FIFO order')
  t.equal(pool.stats().queued.a, 196)
  await pool.destroy()
  const rejected = await Promise.allSettled(waiting.slice(4))
  t.ok(rejected.every(r => r.status === 'rejected' && hasCode(r.reason, 'LIVERY_ERR_CLOSED')), 'destroy rejects the rest')
})

t.test('queue full → LIVERY_ERR_QUEUE_FULL with status 503', async t => {
  const pool = new RequestPool(poolConfig({ maxQueue: 3 }), [
    siteConfig('a', { maxConcurrent: 1, maxQueue: 2 }),
    siteConfig('b', { maxConcurrent: 1, maxQueue: 5 }),
  ])
  t.teardown(() => pool.destroy())
  const shed: ShedMessage[] = []
  const { subscribe, unsubscribe } = await import('node:diagnostics_channel')
  const onShed = (m: unknown): void => { shed.push(m as ShedMessage) }
  subscribe('livery:pool:shed', onShed)
  t.teardown(() => unsubscribe('livery:pool:shed', onShed))

  const a = await pool.acquire('a')
  const queued = [pool.acquire('a'), pool.acquire('a')]
  await t.rejects(pool.acquire('a'), { code: 'LIVERY_ERR_QUEUE_FULL', status: 503 }, 'the site queue is full')
  const b = await pool.acquire('b')
  const bQueued = pool.acquire('b')
  await t.rejects(pool.acquire('b'), { code: 'LIVERY_ERR_QUEUE_FULL' }, 'the process-wide queue is full')
  t.same(shed.map(m => m.reason), ['queue_full', 'queue_full'])
  t.match(shed[1].detail, /process queue of 3/)
  t.equal(pool.stats().shed, 2)
  a.release()
  b.release()
  const tickets = await Promise.all([queued[0], bQueued])
  t.equal(tickets.length, 2, 'queued requests are admitted once slots free')
  await pool.destroy()
  await t.rejects(queued[1], { code: 'LIVERY_ERR_CLOSED' })
})

t.test('queue timeout → LIVERY_ERR_QUEUE_TIMEOUT', async t => {
  keepAlive(t)
  const pool = new RequestPool(poolConfig({ queueTimeout: 5000 }), [siteConfig('a', { maxConcurrent: 1, queueTimeout: 50 })])
  t.teardown(() => pool.destroy())
  const ticket = await pool.acquire('a')
  const shed = nextMessage<ShedMessage>('livery:pool:shed')
  const started = performance.now()
  await t.rejects(pool.acquire('a'), { code: 'LIVERY_ERR_QUEUE_TIMEOUT', status: 503, message: /no slot freed within 50ms/ })
  t.ok(performance.now() - started >= 45, 'the smaller of the site and global queueTimeout applies')
  const m = await shed
  t.same({ ...m, seconds: undefined }, { site: 'a', reason: 'queue_timeout', detail: 'no slot within 50ms', seconds: undefined })
  t.ok((m.seconds ?? 0) >= 0.045, 'the shed carries the time it spent queued (for livery_queue_wait_seconds{outcome="shed"})')
  t.equal(pool.stats().totalQueued, 0)
  ticket.release()
})

t.test('deadline aborts the ticket signal and closes the upstream socket', async t => {
  const sockets: Socket[] = []
  const server: Server = createServer(() => { /* hangs: never answers */ })
  server.on('connection', socket => { sockets.push(socket) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const agent = new Agent()
  t.teardown(async () => {
    await agent.close()
    server.closeAllConnections()
    server.close()
  })
  const pool = new RequestPool(poolConfig(), [siteConfig('a', { requestTimeout: 100 })])
  t.teardown(() => pool.destroy())
  const deadline = nextMessage('livery:pool:deadline')

  // The deadline counts from acquire(), so on a busy machine 100 ms could run
  // out before the request even reached the server (issue 10): the ticket is
  // taken once it has, and undici aborts on a signal that follows the
  // ticket's (its abort, with its reason), as it would on the ticket's own.
  const { port } = server.address() as AddressInfo
  const follow = new AbortController()
  const upstream = request(`http://127.0.0.1:${port}/slow`, { dispatcher: agent, signal: follow.signal }).then(() => undefined, (e: unknown) => e)
  await once(server, 'request')
  const closed = once(sockets[0], 'close')
  const ticket = await pool.acquire('a')
  ticket.signal.addEventListener('abort', () => { follow.abort(ticket.signal.reason) }, { once: true })
  const err: unknown = await upstream
  t.ok(hasCode(err, 'LIVERY_ERR_DEADLINE'), 'undici rejects with the deadline reason')
  t.equal((err as { status: number }).status, 504)
  t.ok(hasCode(ticket.signal.reason, 'LIVERY_ERR_DEADLINE'))
  await closed
  t.pass('the upstream saw its socket close')
  t.same(await deadline, { site: 'a', requestTimeout: 100 })
  t.equal(pool.stats().totalInFlight, 0, 'the aborted ticket gave its slot back')
  t.equal(pool.stats().deadlines, 1)
  ticket.release()
  t.equal(pool.stats().totalInFlight, 0, 'release after abort is a no-op')
})

t.test('killing under pressure frees a slot for the waiter', async t => {
  const clock = manualClock()
  keepAlive(t)
  const pool = new RequestPool(poolConfig(), [siteConfig('a', { maxConcurrent: 2, killAfter: 1000 })],
    { now: clock.now, killCheckInterval: 10 })
  t.teardown(() => pool.destroy())
  const killed: KilledMessage[] = []
  const { subscribe, unsubscribe } = await import('node:diagnostics_channel')
  const onKilled = (m: unknown): void => { killed.push(m as KilledMessage) }
  subscribe('livery:pool:killed', onKilled)
  t.teardown(() => unsubscribe('livery:pool:killed', onKilled))

  const old = await pool.acquire('a')
  clock.set(5000)
  const young = await pool.acquire('a')
  t.notOk(old.signal.aborted, 'a long runner is left alone while the site has free slots')

  clock.set(5500)
  const waiter = pool.acquire('a')
  t.equal(pool.stats().queued.a, 0, 'the waiter took the freed slot at once')
  t.ok(old.signal.aborted, 'the oldest runner is killed on enqueue')
  t.notOk(young.signal.aborted, 'a runner younger than killAfter is spared')
  t.ok(hasCode(old.signal.reason, 'LIVERY_ERR_KILLED'))
  t.match(old.signal.reason, { status: 503, message: /longer than 1s while site a/ })
  const admitted = await waiter
  t.equal(admitted.queueWait, 0)

  // The timer path: a waiter queued while everyone is young is served once a runner ages.
  clock.set(5600)
  const second = pool.acquire('a')
  t.notOk(young.signal.aborted, 'nobody is old enough yet')
  const aborted = once(young.signal, 'abort')
  clock.set(6100)
  await aborted
  const ticket = await second
  t.equal(ticket.queueWait, 500, 'queue wait is measured on the pool clock')
  t.same(killed, [{ site: 'a', ranMs: 5500, killAfter: 1000 }, { site: 'a', ranMs: 1100, killAfter: 1000 }])
  t.equal(pool.stats().killed, 2)
  t.same(pool.stats().inFlight, { a: 2 })
  old.release()
  young.release()
  t.same(pool.stats().inFlight, { a: 2 }, 'releasing a killed ticket is a no-op')
})

t.test('a queued waiter whose client went away leaves the queue', async t => {
  const pool = new RequestPool(poolConfig(), [siteConfig('a', { maxConcurrent: 1 })])
  t.teardown(() => pool.destroy())
  const ticket = await pool.acquire('a')
  const client = new AbortController()
  const waiting = pool.acquire('a', client.signal)
  t.equal(pool.stats().queued.a, 1)
  client.abort()
  await t.rejects(waiting, { code: 'LIVERY_ERR_CLIENT_ABORTED' })
  t.equal(pool.stats().queued.a, 0)
  t.equal(pool.stats().abandoned, 1)
  ticket.release()
  t.equal(pool.stats().totalInFlight, 0, 'nobody was admitted for the departed client')

  await t.rejects(pool.acquire('a', AbortSignal.abort()), { code: 'LIVERY_ERR_CLIENT_ABORTED' }, 'already aborted')

  const running = new AbortController()
  const admitted = await pool.acquire('a', running.signal)
  running.abort()
  t.ok(hasCode(admitted.signal.reason, 'LIVERY_ERR_CLIENT_ABORTED'), 'a client abort after admission aborts the ticket')
  t.equal(pool.stats().totalInFlight, 0)
})

t.test('round-robin across sites when the global limit is the bottleneck', async t => {
  const pool = new RequestPool(poolConfig({ maxConcurrent: 2 }), [siteConfig('a'), siteConfig('b'), siteConfig('c')])
  t.teardown(() => pool.destroy())
  const first = [await pool.acquire('a'), await pool.acquire('a')]
  const order: string[] = []
  const admitted: Ticket[] = []
  const track = (site: string): Promise<void> => pool.acquire(site).then(ticket => {
    order.push(site)
    admitted.push(ticket)
  })
  const waiting = [track('a'), track('a'), track('a'), track('a'), track('b'), track('b'), track('c')]
  t.same(pool.stats().queued, { a: 4, b: 2, c: 1 })
  let current = first
  while (order.length < waiting.length) {
    const before = order.length
    for (const ticket of current) ticket.release()
    // Admission resolves promises; one macrotask turn lets their callbacks run.
    await new Promise(resolve => setImmediate(resolve))
    current = admitted.slice(before)
  }
  await Promise.all(waiting)
  t.same(order, ['a', 'b', 'c', 'a', 'b', 'a', 'a'], 'each site with waiters gets a turn')
})

t.test('overload sheds before queueing', async t => {
  let reason: string | undefined = 'event-loop delay 1.2s > 1s'
  const pool = new RequestPool(poolConfig(), [siteConfig('a')], { watchdog: { overloaded: () => reason } })
  t.teardown(() => pool.destroy())
  const shed = nextMessage<ShedMessage>('livery:pool:shed')
  await t.rejects(pool.acquire('a'), { code: 'LIVERY_ERR_OVERLOADED', status: 503, message: /overloaded \(event-loop delay 1.2s > 1s\)/ })
  t.same(await shed, { site: 'a', reason: 'overloaded', detail: 'event-loop delay 1.2s > 1s', seconds: 0 })
  reason = undefined
  const ticket = await pool.acquire('a')
  ticket.release()
  t.equal(pool.stats().admitted, 1)
})

t.test('queue wait is published for every admission', async t => {
  const clock = manualClock()
  const pool = new RequestPool(poolConfig(), [siteConfig('a', { maxConcurrent: 1 })], { now: clock.now })
  t.teardown(() => pool.destroy())
  const first = nextMessage<QueueWaitMessage>('livery:pool:queue-wait')
  const ticket = await pool.acquire('a')
  t.same(await first, { site: 'a', seconds: 0 })
  const waiting = pool.acquire('a')
  clock.set(250)
  const second = nextMessage<QueueWaitMessage>('livery:pool:queue-wait')
  ticket.release()
  t.same(await second, { site: 'a', seconds: 0.25 })
  const next = await waiting
  t.equal(next.queueWait, 250)
  next[Symbol.dispose]()
  t.ok(next.done, 'dispose releases')
})

t.test('close drains gracefully; destroy aborts; both idempotent', async t => {
  const pool = new RequestPool(poolConfig(), [siteConfig('a', { maxConcurrent: 1 })])
  const ticket = await pool.acquire('a')
  const waiting = pool.acquire('a')
  let closed = false
  const closing = pool.close().then(() => { closed = true })
  await t.rejects(pool.acquire('a'), { code: 'LIVERY_ERR_CLOSED' })
  await t.rejects(pool.acquire('nope'), { code: 'LIVERY_ERR_NO_SITE' })
  ticket.release()
  const next = await waiting
  t.notOk(closed, 'close waits for queued and in-flight requests')
  next.release()
  await closing
  t.ok(closed)
  await pool.close()

  const other = new RequestPool(poolConfig(), [siteConfig('a', { maxConcurrent: 1 })])
  const running = await other.acquire('a')
  const queued = other.acquire('a')
  await other.destroy()
  await t.rejects(queued, { code: 'LIVERY_ERR_CLOSED' })
  t.ok(hasCode(running.signal.reason, 'LIVERY_ERR_CLOSED'))
  await other.destroy()
  t.throws(() => new RequestPool(poolConfig(), [siteConfig('a'), siteConfig('a')]), { code: 'LIVERY_ERR_CONFIG' })
})

t.test('tryAcquire: a ticket now when acquire() would admit at once, else undefined', async t => {
  let reason: string | undefined
  const pool = new RequestPool(poolConfig(), [siteConfig('a', { maxConcurrent: 1 })], { watchdog: { overloaded: () => reason } })
  t.teardown(() => pool.destroy())
  t.equal(pool.tryAcquire('nowhere'), undefined, 'an unknown site is left to acquire() to refuse')
  const published = nextMessage<QueueWaitMessage>('livery:pool:queue-wait')
  const first = pool.tryAcquire('a')
  t.ok(first, 'a free slot is taken synchronously')
  t.same(await published, { site: 'a', seconds: 0 }, 'and its admission is published like any other')
  t.equal(first?.queueWait, 0)
  t.equal(pool.tryAcquire('a'), undefined, 'no room: undefined, nothing queued')
  t.same(pool.stats().queued, { a: 0 })
  const waiting = pool.acquire('a')
  first?.release()
  t.equal(pool.tryAcquire('a'), undefined, 'a waiter goes first')
  const second = await waiting
  second.clientGone()
  t.ok(second.signal.aborted, 'clientGone aborts the ticket')
  t.ok(hasCode(second.signal.reason, 'LIVERY_ERR_CLIENT_ABORTED'))
  t.ok(second.done, 'and frees its slot')
  reason = 'event-loop delay 1.2s > 1s'
  t.equal(pool.tryAcquire('a'), undefined, 'overloaded: left to acquire() to shed')
  reason = undefined
  const third = pool.tryAcquire('a')
  t.ok(third)
  third?.release()
  await pool.close()
  t.equal(pool.tryAcquire('a'), undefined, 'closed')
  t.equal(pool.stats().admitted, 3)
})
