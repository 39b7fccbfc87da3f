/**
 * A threaded page's cost, which decides whether the site's next pages are
 * themed inline, is what the transform took on the thread, not its wait for
 * a thread. Timed from run(), a burst of pages waiting behind each other
 * counted the queue as their cost: the estimate rose with the queue, a site
 * of cheap 60 KB pages stayed on the threads, and under bench/compare's
 * themed load the queue overflowed and pages went out unthemed
 * ("all 1 theming threads are busy"). Shown without timing anything: with
 * one thread, the second page waits for the first, so their two costs fit
 * in the time the second took from run() to its answer only when neither
 * counts the wait.
 */
import t from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { TransformPool } from '../../src/pool/index.ts'
import { TransformScheduler } from '../../src/server/transform-scheduler.ts'
import { transformTaskModule } from '../../src/server/site-themer.ts'
import { compileMem, rulesXml } from '../theme/helpers.ts'

const rules = rulesXml(`<replace css:theme="title" css:content="title"/>
<replace css:theme-children="#main" content="//p[count(preceding-sibling::p) = count(following-sibling::p)]"/>`)
const theme = '<!DOCTYPE html><html><head><title>theme</title></head><body><div id="main">placeholder</div></body></html>\n'

/** n sibling paragraphs: the rule's cost grows with n². */
function page (n: number): string {
  return `<!DOCTYPE html><html><head><title>content</title></head><body>${Array.from({ length: n }, (_, i) => `<p>p${i}</p>`).join('')}</body></html>`
}

t.test('a threaded page costs what the thread spent on it, not its wait for the thread', async t => {
  const pool = new TransformPool({ threads: 1, filename: transformTaskModule })
  t.teardown(() => pool.destroy())
  const costs: Array<{ ms: number, bytes: number, inline: boolean }> = []
  const onCost = (m: unknown): void => { costs.push(m as { ms: number, bytes: number, inline: boolean }) }
  subscribe('livery:theme:cost', onCost)
  t.teardown(() => unsubscribe('livery:theme:cost', onCost))
  const compiled = await compileMem({ 'rules.xml': rules, 'theme.html': theme })
  // threshold 0: every page to the thread; a minute is a safety net for a busy machine.
  const site = new TransformScheduler({ site: 'site', pool, threshold: 0, timeout: 60_000, inlineBudget: 0, rememberTimeout: 0 })
  // The thread is started and holds the theme before the pages under test.
  await site.run(compiled, page(2), { path: '/warm' })
  costs.length = 0

  const costly = page(1000)
  const cheap = page(3)
  const started = performance.now()
  const first = site.run(compiled, costly, { path: '/costly' })
  const second = site.run(compiled, cheap, { path: '/cheap' })
  t.match(await second, { kind: 'encoded' })
  const secondTook = performance.now() - started
  t.match(await first, { kind: 'encoded' })
  const costOf = (chars: number): number => {
    const m = costs.find(c => c.bytes === chars)
    if (m === undefined) throw new Error(`no cost published for the page of ${chars} characters`)
    t.equal(m.inline, false)
    return m.ms
  }
  const a = costOf(costly.length)
  const b = costOf(cheap.length)
  t.ok(a + b <= secondTook, `the two costs (${a.toFixed(0)} + ${b.toFixed(1)} ms) fit in the ${secondTook.toFixed(0)} ms the second page took: its wait is not in its cost`)
  t.ok(site.estimate(cheap.length) < a, 'the estimate for a cheap page stays below the costly one\'s cost')
})
