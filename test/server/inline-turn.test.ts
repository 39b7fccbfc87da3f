/**
 * Issue 15: under a cold themed-miss load the event loop paused for 113 ms,
 * because every page whose upstream answer arrived in one poll phase was
 * themed inline before the loop moved on. LoopTurn bounds the inline work
 * between two check phases; the clock is injected, so a job "costs" exactly
 * what the test says, and turns are counted by setImmediate.
 */
import t from 'tap'
import { LoopTurn } from '../../src/server/inline-turn.ts'
import { TransformPool } from '../../src/pool/index.ts'
import { TransformScheduler } from '../../src/server/transform-scheduler.ts'
import { transformTaskModule } from '../../src/server/site-themer.ts'
import { compileMem, rulesXml } from '../theme/helpers.ts'

/** A clock that moves `cost` ms across each job: the job advances it. */
function costlyJobs (cost: number): { now: () => number, job: (id: number) => () => number } {
  let now = 0
  return { now: () => now, job: id => () => { now += cost; return id } }
}

const nextTurn = (): Promise<void> => new Promise(resolve => { setImmediate(resolve) })

t.test('jobs past the turn budget wait for later turns, in arrival order', async t => {
  const clock = costlyJobs(3)
  const turn = new LoopTurn({ budget: 10, now: clock.now })
  const done: number[] = []
  const results: Array<number | Promise<number>> = []
  // 20 pages arrive in one turn, 3 ms of work each.
  for (let i = 0; i < 20; i++) {
    const r = turn.run(clock.job(i))
    results.push(r)
    if (typeof r === 'number') done.push(r)
    else void r.then(v => { done.push(v) })
  }
  t.same(done, [0, 1, 2, 3], 'this turn ran 4 jobs (12 ms, crossing the 10 ms budget once), then stopped')
  t.equal(turn.waiting, 16)
  const perTurn: number[] = []
  for (let before = done.length; done.length < 20; before = done.length) {
    await nextTurn()
    perTurn.push(done.length - before)
  }
  t.ok(perTurn.every(n => n <= 4), `no later turn ran more than 4 either: ${perTurn.join(', ')}`)
  t.same(done, Array.from({ length: 20 }, (_, i) => i), 'all ran, first come first served')
  t.same(await Promise.all(results), Array.from({ length: 20 }, (_, i) => i))
  t.equal(turn.waiting, 0)
})

t.test('what a check phase drains counts against the budget of the turn that follows it', async t => {
  const clock = costlyJobs(6)
  const turn = new LoopTurn({ budget: 10, now: clock.now })
  t.equal(turn.run(clock.job(1)), 1)
  t.equal(turn.run(clock.job(2)), 2)
  const third = turn.run(clock.job(3))
  t.type(third, Promise)
  await nextTurn()
  t.equal(turn.waiting, 0, 'the check phase ran the third (6 ms of 10)')
  t.equal(turn.run(clock.job(4)), 4, 'budget was left, so the fourth ran at once')
  const fifth = turn.run(clock.job(5))
  t.type(fifth, Promise, 'the fifth would cross it again')
  t.equal(await third, 3)
  t.equal(await fifth, 5)
  // Once a turn passes with nothing spent, jobs run at once again.
  await nextTurn()
  await nextTurn()
  t.equal(turn.run(clock.job(6)), 6)
})

t.test('a job that throws rejects its own promise only; a synchronous one throws', async t => {
  const clock = costlyJobs(20)
  const turn = new LoopTurn({ budget: 10, now: clock.now })
  t.equal(turn.run(clock.job(1)), 1)
  const failing = turn.run((): number => { throw new Error('bad selector') })
  const after = turn.run(clock.job(2))
  await t.rejects(Promise.resolve(failing), { message: 'bad selector' })
  t.equal(await after, 2)
  await nextTurn()
  await nextTurn()
  t.throws(() => turn.run((): number => { throw new Error('at once') }), { message: 'at once' })
})

t.test('the scheduler themes inline pages through the turn', async t => {
  const pool = new TransformPool({ threads: 1, filename: transformTaskModule })
  t.teardown(() => pool.destroy())
  // Any measurable work spends this budget: the first page runs at once, the rest wait for the check phase.
  const turn = new LoopTurn({ budget: Number.MIN_VALUE })
  const scheduler = new TransformScheduler({ site: 'site', pool, threshold: 1e9, timeout: 60_000, inlineBudget: 0, rememberTimeout: 0, turn })
  const compiled = await compileMem({ 'rules.xml': rulesXml('<replace css:theme="title" css:content="title"/>'), 'theme.html': '<html><head><title>theme</title></head><body class="themed"></body></html>' })
  const page = (i: number): string => `<html><head><title>page ${i}</title></head><body></body></html>`
  const outs = Array.from({ length: 5 }, (_, i) => scheduler.run(compiled, page(i), { path: `/${i}` }))
  t.notOk(outs[0] instanceof Promise, 'the first page was themed at once')
  t.ok(outs.slice(1).every(o => o instanceof Promise), 'the others wait')
  t.equal(turn.waiting, 4)
  const themed = await Promise.all(outs)
  themed.forEach((o, i) => { t.match(o, { kind: 'html', html: new RegExp(`<title>page ${i}</title>.*class="themed"`, 's') }) })
  t.equal(pool.stats().completed, 0, 'none went to the thread')
})
