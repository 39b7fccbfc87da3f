/**
 * The worker tier's queue semantics (issue 13), run against both
 * implementations: the in-process runner and BullMQ on the shared Redis
 * (unique prefix per test). Every wait is on a `livery:worker:job` event or
 * a promise the job itself resolves; backoffs are a few ms.
 */
import t, { type Test } from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { MemoryQueue } from '../../src/worker/memory-queue.ts'
import { BullQueue } from '../../src/worker/bullmq-queue.ts'
import type { WorkQueue } from '../../src/worker/queue.ts'
import type { JobMessage } from '../../src/worker/channels.ts'
import { randomBytes } from 'node:crypto'
import { deletePrefix, sharedRedisUrl } from '../helpers/redis.ts'

type Make = (t: Test, opts?: { attempts?: number }) => WorkQueue<{ n: number }>

// The runner's timers are unref'd (as they must be); this keeps the test process alive while it waits on them.
const alive = setInterval(() => {}, 1000)
t.teardown(() => clearInterval(alive))

const base = { attempts: 3, backoff: 5, rate: 0, maxDeadLetters: 10 }

const makers: Record<string, Make> = {
  memory: (t, opts = {}) => {
    const q = new MemoryQueue<{ n: number }>({ ...base, ...opts, kind: 'test' })
    t.teardown(() => q.destroy())
    return q
  },
  bullmq: (t, opts = {}) => {
    const prefix = testPrefix()
    const q = new BullQueue<{ n: number }>({ ...base, ...opts, kind: 'test', url: sharedRedisUrl, prefix })
    closeFirst(t, prefix, q)
    return q
  },
}

function testPrefix (): string {
  return `livery-test:worker:${process.pid}:${randomBytes(4).toString('hex')}:`
}

/** Closes the queues, then deletes the prefix: a queue still open would write its keys back. */
function closeFirst (t: Test, prefix: string, ...queues: BullQueue<{ n: number }>[]): void {
  t.teardown(async () => {
    await Promise.all(queues.map(q => q.close()))
    await deletePrefix(sharedRedisUrl, prefix)
  })
}

/** Resolves with the first `livery:worker:job` message matching `pred`. */
function nextJob (pred: (m: JobMessage) => boolean): Promise<JobMessage> {
  return new Promise(resolve => {
    const fn = (m: unknown): void => {
      const msg = m as JobMessage
      if (!pred(msg)) return
      unsubscribe('livery:worker:job', fn)
      resolve(msg)
    }
    subscribe('livery:worker:job', fn)
  })
}

function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>(r => { resolve = r })
  return { promise, resolve }
}

for (const [name, make] of Object.entries(makers)) {
  t.test(`${name}: a second enqueue of a waiting or running key is a no-op`, async t => {
    const q = make(t)
    t.equal(await q.enqueue('a', { n: 1 }), true)
    t.equal(await q.enqueue('a', { n: 2 }), false, 'waiting: deduplicated')
    t.match(await q.depth(), { waiting: 1, active: 0 })
    const release = deferred()
    const started = deferred()
    const seen: number[] = []
    q.process(async job => { seen.push(job.data.n); started.resolve(); await release.promise }, { concurrency: 2 })
    await started.promise
    t.equal(await q.enqueue('a', { n: 3 }), false, 'running: deduplicated')
    const done = nextJob(m => m.kind === 'test' && m.key === 'a' && m.event === 'done')
    release.resolve()
    await done
    t.same(seen, [1], 'the job ran once, with the first data')
    t.equal(await q.enqueue('a', { n: 4 }), true, 'once finished, the key can be enqueued again')
    await nextJob(m => m.key === 'a' && m.event === 'done')
    t.same(seen, [1, 4])
  })

  t.test(`${name}: a failing job is retried with backoff, then dead-lettered`, async t => {
    const q = make(t, { attempts: 3 })
    const attempts: number[] = []
    const dead = nextJob(m => m.kind === 'test' && m.event === 'dead')
    const retries: JobMessage[] = []
    const onRetry = (m: unknown): void => { if ((m as JobMessage).event === 'retry') retries.push(m as JobMessage) }
    subscribe('livery:worker:job', onRetry)
    t.teardown(() => unsubscribe('livery:worker:job', onRetry))
    q.process(async job => { attempts.push(job.attempt); throw new Error(`boom ${job.attempt}`) }, { concurrency: 1 })
    await q.enqueue('bad', { n: 7 })
    t.match(await dead, { key: 'bad', attempt: 3, error: 'boom 3' })
    t.same(attempts, [1, 2, 3], 'three attempts in all')
    t.same(retries.map(r => r.attempt), [1, 2], 'two retries announced')
    const letters = await q.deadLetters()
    t.equal(letters.length, 1)
    t.match(letters[0], { kind: 'test', key: 'bad', data: { n: 7 }, attempts: 3, error: 'boom 3' })
    t.equal(await q.enqueue('bad', { n: 8 }), true, 'a dead-lettered key can be enqueued again')
  })

  t.test(`${name}: close() lets running jobs finish and starts no new ones`, async t => {
    const q = make(t)
    const release = deferred()
    const started: string[] = []
    const finished: string[] = []
    const bothStarted = deferred()
    q.process(async job => {
      started.push(job.key)
      if (started.length === 2) bothStarted.resolve()
      await release.promise
      finished.push(job.key)
    }, { concurrency: 2 })
    await q.enqueue('x', { n: 1 })
    await q.enqueue('y', { n: 2 })
    await bothStarted.promise
    await q.enqueue('z', { n: 3 })
    const closed = q.close()
    release.resolve()
    await closed
    t.same(finished.sort(), ['x', 'y'], 'the jobs in flight finished')
    t.notOk(started.includes('z'), 'no job started after close')
  })
}

t.test('bullmq: two consumers never run the same job at once, and every job runs once', async t => {
  const prefix = testPrefix()
  const a = new BullQueue<{ n: number }>({ ...base, kind: 'test', url: sharedRedisUrl, prefix })
  const b = new BullQueue<{ n: number }>({ ...base, kind: 'test', url: sharedRedisUrl, prefix })
  closeFirst(t, prefix, a, b)
  const running = new Set<string>()
  const runs = new Map<string, number>()
  let overlap = 0
  const byConsumer = { a: 0, b: 0 }
  const total = 40
  const allDone = deferred()
  let done = 0
  const handler = (who: 'a' | 'b') => async (job: { key: string }): Promise<void> => {
    if (running.has(job.key)) overlap++
    running.add(job.key)
    runs.set(job.key, (runs.get(job.key) ?? 0) + 1)
    byConsumer[who]++
    // Yield a few turns so the other consumer has every chance to take the same job.
    await new Promise(resolve => setImmediate(resolve))
    running.delete(job.key)
    if (++done === total) allDone.resolve()
  }
  a.process(handler('a'), { concurrency: 4 })
  b.process(handler('b'), { concurrency: 4 })
  // Each key enqueued from both producers at once: one job per key.
  await Promise.all(Array.from({ length: total }, (_, i) => Promise.all([a.enqueue(`k${i}`, { n: i }), b.enqueue(`k${i}`, { n: i })])))
  await allDone.promise
  t.equal(overlap, 0, 'no job ran on both at once')
  t.equal(runs.size, total)
  t.ok([...runs.values()].every(n => n === 1), 'each job ran exactly once')
  t.match(await a.depth(), { waiting: 0, delayed: 0, active: 0 })
})
