/**
 * The worker tier's queue-depth gauge while Redis is stalled: the first scrape
 * waits at most `depthTimeout` for the depth; later scrapes, while that query
 * is still unanswered, leave the depth out at once and queue no more queries
 * behind the stall (coherence-redis's scrapes with Redis paused waited the
 * whole timeout in every process, every time). Once a query was given up
 * (the queue's own deadline), later scrapes ask again in the background and
 * wait for none until one answers.
 */
import t from 'tap'
import { createMetrics } from '../../src/metrics/metrics.ts'
import { depthTimeout, instrumentWorker, type InstrumentedTier } from '../../src/metrics/instrument-worker.ts'

type Depth = Awaited<ReturnType<InstrumentedTier['depth']>>

t.test('a stalled depth query is not asked again, and scrapes do not wait for it', async t => {
  const metrics = createMetrics({ defaultMetrics: false })
  let asked = 0
  let answer: ((d: Depth) => void) | undefined
  const tier: InstrumentedTier = {
    depth: () => {
      asked++
      if (asked === 1) return new Promise<Depth>(resolve => { answer = resolve })
      return Promise.resolve({ theme: { waiting: 3, delayed: 1, active: 2 } })
    },
  }
  const stop = instrumentWorker(metrics, tier)
  // The gauge's own timer is unref'd: keep the process alive while a scrape waits on it.
  const alive = setInterval(() => {}, 1000)
  t.teardown(() => { stop(); clearInterval(alive) })

  const first = await metrics.registry.metrics()
  t.equal(asked, 1, 'the first scrape asked for the depth')
  t.notMatch(first, /livery_worker_queue_depth\{/, 'and left it out when no answer came in time')

  // Ordering, not speed: the scrape settles before a timer as long as the depth timeout, started after it.
  let probeFired = false
  const second = metrics.registry.metrics()
  const probe = new Promise<void>(resolve => setTimeout(() => { probeFired = true; resolve() }, depthTimeout))
  const text = await second
  t.notOk(probeFired, 'the second scrape did not wait for the stalled query')
  t.equal(asked, 1, 'nor asked again behind it')
  t.notMatch(text, /livery_worker_queue_depth\{/, 'the depth is left out while Redis is stalled')
  await probe

  answer?.({ theme: { waiting: 9, delayed: 0, active: 0 } })
  await new Promise<void>(resolve => setImmediate(resolve))
  const third = await metrics.registry.metrics()
  t.equal(asked, 2, 'once the stalled query answered, a scrape asks again')
  t.match(third, /livery_worker_queue_depth\{kind="theme",state="waiting"\} 3/, 'and reports the fresh depth')
})

t.test('after a depth query was given up, scrapes wait for none until one answers', async t => {
  const metrics = createMetrics({ defaultMetrics: false })
  let asked = 0
  const calls: Array<{ resolve: (d: Depth) => void, reject: (e: Error) => void }> = []
  const tier: InstrumentedTier = {
    depth: () => {
      asked++
      return new Promise<Depth>((resolve, reject) => { calls.push({ resolve, reject }) })
    },
  }
  const stop = instrumentWorker(metrics, tier)
  const alive = setInterval(() => {}, 1000)
  t.teardown(() => { stop(); clearInterval(alive) })
  const settle = (): Promise<void> => new Promise<void>(resolve => setImmediate(resolve))

  t.notMatch(await metrics.registry.metrics(), /livery_worker_queue_depth\{/, 'the first scrape waited, and left the depth out')
  // The queue's own deadline gives the stalled query up, as BullMQQueue's does.
  calls[0].reject(new Error('the job queue (depth) did not answer'))
  await settle()

  let probeFired = false
  const probe = new Promise<void>(resolve => setTimeout(() => { probeFired = true; resolve() }, depthTimeout))
  const text = await metrics.registry.metrics()
  t.notOk(probeFired, 'the next scrape did not wait the depth timeout again')
  t.equal(asked, 2, 'it asked again, in the background')
  t.notMatch(text, /livery_worker_queue_depth\{/, 'and left the depth out')
  await probe

  calls[1].resolve({ theme: { waiting: 5, delayed: 0, active: 1 } })
  await settle()
  const later = metrics.registry.metrics()
  await settle()
  t.equal(asked, 3, 'once a query answered, a scrape asks again')
  calls[2].resolve({ theme: { waiting: 4, delayed: 0, active: 1 } })
  t.match(await later, /livery_worker_queue_depth\{kind="theme",state="waiting"\} 4/, 'and waits for the answer as before the stall')
})
