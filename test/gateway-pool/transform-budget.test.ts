/**
 * The worker tier through the real gateway: a crafted page and rule set make
 * one transform take tens of seconds (an XPath predicate that counts
 * preceding and following siblings is quadratic in the number of paragraphs).
 * With a 2 s budget its thread is terminated and the page goes out unthemed
 * with `X-Livery-Theme: timeout`; the pool replaces the thread and later
 * pages are themed again.
 *
 * Issue 10: with a 100 ms budget, on a busy machine a small page's transform
 * (or a fresh thread's start) kept running past the budget, each timeout
 * replaced the thread again, and no themed page came within 5 s (nor 60 s at
 * a load of 20). The budget is now 2 s, still a tenth of what the huge page
 * needs. The 5 s bound stood for "the huge transform's thread was terminated,
 * not left running"; the test now
 * watches the threads themselves (process 'worker' events, each Worker's
 * 'exit'): the thread that held the huge transform exits, a new one starts,
 * and it themes the next page. Waits are for those events, with safety nets.
 */
import t from 'tap'
import { join } from 'node:path'
import type { Worker } from 'node:worker_threads'
import { startUpstream, startGateway } from '../helpers/servers.ts'
import { get, header, nextMessage, type Reply } from './fixture.ts'

const rules = `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html"/>
  <replace css:theme="title" css:content="title"/>
  <replace css:theme-children="#main" content="//p[count(preceding-sibling::p) = count(following-sibling::p)]"/>
</rules>
`
const theme = '<!DOCTYPE html><html><head><title>theme</title></head><body class="themed"><div id="main">placeholder</div></body></html>\n'

/** n sibling paragraphs; the rule's cost grows with n² (20 000 of them: tens of seconds of CPU). */
function page (n: number): string {
  const ps = Array.from({ length: n }, (_, i) => `<p>p${i}</p>`).join('')
  return `<!DOCTYPE html><html><head><title>content ${n}</title></head><body>${ps}</body></html>`
}

t.test('a transform past its budget is terminated; the page is served unthemed; the next pages are themed', async t => {
  // Every thread this process starts from here on, and the exit of each.
  const threads: Array<{ id: number, exited: Promise<void>, gone: boolean }> = []
  const onWorker = (w: Worker): void => {
    const entry = { id: w.threadId, gone: false, exited: new Promise<void>(resolve => { w.once('exit', () => { entry.gone = true; resolve() }) }) }
    threads.push(entry)
  }
  process.on('worker', onWorker)
  t.teardown(() => { process.off('worker', onWorker) })
  const dir = t.testdir({ 'rules.xml': rules, 'theme.html': theme })
  const huge = page(20_000)
  const small = page(5)
  const up = await startUpstream(t, (req, res) => {
    const body = req.url === '/huge' ? huge : small
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body)
  })
  const fx = await startGateway(t, {
    raw: {
      log: { level: 'info', access: false },
      threads: 1,
      sites: [{ name: 'themed', hosts: ['*'], upstream: up.url, theme: { rules: join(dir, 'rules.xml'), threshold: 0, timeout: '2s' } }],
    },
  })
  const pool = fx.gateway.transformPool
  if (pool === undefined) throw new Error('a themed site must get a transform pool')
  t.equal(pool.stats().threads, 1)

  /**
   * A small page until it comes back themed: the first task of a fresh thread
   * can exceed its budget while the thread is still starting (such a task is
   * dropped from the queue, costing no thread), and so can a small task on a
   * starved core. 60 s is a safety net, not the thing tested.
   */
  const themedSmallPage = async (label: string): Promise<Reply> => {
    const started = performance.now()
    for (let i = 0; ; i++) {
      const r = await get(fx.agent, fx.url, 'site.test', `/${label}/${i}`)
      t.equal(r.status, 200)
      if (header(r, 'x-livery-theme') === undefined) {
        t.comment(`${label}: themed after ${i} unthemed replies, ${(performance.now() - started).toFixed(0)} ms`)
        return r
      }
      t.equal(header(r, 'x-livery-theme'), 'timeout', `${label}: unthemed only while the thread starts`)
      if (performance.now() - started > 60_000) throw new Error(`${label}: no themed page within 60 s`)
    }
  }

  const warm = await themedSmallPage('warm')
  t.match(warm.body, /<body class="themed"><div id="main"><p>p2<\/p><\/div>/, 'a small page is themed on the thread')

  const live = threads.filter(x => !x.gone)
  t.ok(live.length >= 1, `the pool's thread is running (${live.length} live threads)`)
  const timeoutSeen = nextMessage<{ name: string, timeout: number }>('livery:pool:transform-timeout')
  const slow = await get(fx.agent, fx.url, 'site.test', '/huge')
  t.equal(slow.status, 200, 'the page is still served')
  t.equal(header(slow, 'x-livery-theme'), 'timeout', 'unthemed, marked X-Livery-Theme: timeout')
  t.equal(slow.body, huge, 'the content page as the upstream sent it')
  t.comment(`/huge answered in ${slow.ms.toFixed(0)} ms`)
  t.match(await timeoutSeen, { name: 'transform', timeout: 2000 })
  t.ok(fx.logs.find({ msg: 'theming took too long; page served unthemed' }).length >= 1, 'the timeout is logged')
  // The seconds of CPU the transform still needed are not spent: its thread is gone.
  await Promise.race(live.map(x => x.exited))
  t.ok(live.some(x => x.gone), 'the thread that ran the huge transform was terminated')

  const after = await themedSmallPage('after')
  t.match(after.body, /<body class="themed">/, 'later pages are themed again on the replacement thread')
  t.ok(threads.some(x => !live.includes(x) && !x.gone), 'by a thread started after the termination')
  const again = await get(fx.agent, fx.url, 'site.test', '/again')
  t.equal(header(again, 'x-livery-theme'), undefined)
  t.match(again.body, /<body class="themed">/)
  t.equal(pool.stats().threads, 1, 'still one thread')
  t.ok(pool.stats().timeouts >= 1)
})
