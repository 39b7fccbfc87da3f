/**
 * Issue 15, item 7: the compiled theme crosses to the transform threads once
 * per version, not with every page. Before, each threaded page carried the
 * whole Compiled object, structured-cloned on the event loop (about 0.55 ms
 * for a 20 KB theme). Counted by the events of src/server/shared-theme.ts on
 * a real pool with one thread, so the counts are exact: serialised once per
 * version on this side, read once per version by the thread, and read again
 * by the thread piscina starts after a transform past its budget.
 */
import t from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { TransformPool } from '../../src/pool/index.ts'
import { TransformScheduler } from '../../src/server/transform-scheduler.ts'
import { transformTaskModule } from '../../src/server/site-themer.ts'
import { ThreadThemes, shareTheme, type SharedThemeMessage } from '../../src/server/shared-theme.ts'
import type { Compiled, EncodedOutcome, TransformOutcome } from '../../src/theme/index.ts'
import { compileMem, rulesXml } from '../theme/helpers.ts'

const rules = rulesXml(`<replace css:theme="title" css:content="title"/>
<replace css:theme-children="#main" content="//p[count(preceding-sibling::p) = count(following-sibling::p)]"/>`)

const theme = (label: string): string => `<!DOCTYPE html><html><head><title>theme</title></head><body class="${label}"><div id="main">placeholder</div></body></html>\n`

/** n sibling paragraphs: the rule's cost grows with n² (20 000 of them: tens of seconds of CPU). */
function page (n: number, title: string): string {
  return `<!DOCTYPE html><html><head><title>${title}</title></head><body>${Array.from({ length: n }, (_, i) => `<p>p${i}</p>`).join('')}</body></html>`
}

function record<T> (name: string, t: { teardown: (fn: () => void) => void }): T[] {
  const seen: T[] = []
  const fn = (m: unknown): void => { seen.push(m as T) }
  subscribe(name, fn)
  t.teardown(() => unsubscribe(name, fn))
  return seen
}

const compileVersion = async (label: string): Promise<Compiled> => {
  const c = await compileMem({ 'rules.xml': rules, 'theme.html': theme(label) })
  return { ...c, version: label }
}

/** A threaded page comes back encoded, its buffer moved from the thread. */
function html (out: TransformOutcome | EncodedOutcome): string {
  if (out.kind !== 'encoded') throw new Error(`expected a themed page from the thread, got ${out.kind}`)
  return Buffer.from(out.body).toString('utf8')
}

t.test('the compiled theme goes to a thread once per version, and again after the thread is replaced', async t => {
  const pool = new TransformPool({ threads: 1, filename: transformTaskModule })
  t.teardown(() => pool.destroy())
  const shared = record<SharedThemeMessage>('livery:theme:shared', t)
  const loads = record<{ site: string, version: string }>('livery:theme:thread-load', t)
  // threshold 0: every page goes to the thread. A minute is a safety net for a busy machine, not the thing tested.
  const site = new TransformScheduler({ site: 'site', pool, threshold: 0, timeout: 60_000, inlineBudget: 0, rememberTimeout: 0 })
  const v1 = await compileVersion('v1')
  const v2 = await compileVersion('v2')

  const pages = 20
  for (let i = 0; i < pages; i++) {
    t.match(html(await site.run(v1, page(3, `one ${i}`), { path: `/one/${i}` })), new RegExp(`<title>one ${i}</title>.*class="v1"`, 's'))
  }
  t.same(shared.map(m => m.version), ['v1'], `serialised once for ${pages} pages`)
  t.ok(shared[0].bytes > 0)
  t.same(loads, [{ site: 'site', version: 'v1' }], 'the thread read it once')

  // A new version: pages themed with it at once, read once more; the old one is not asked for again.
  for (let i = 0; i < pages; i++) t.match(html(await site.run(v2, page(3, `two ${i}`), { path: `/two/${i}` })), /class="v2"/)
  t.same(shared.map(m => m.version), ['v1', 'v2'])
  t.same(loads.map(m => m.version), ['v1', 'v2'])

  // A transform past its budget: piscina terminates the only thread and starts another, which holds nothing yet.
  const costly = new TransformScheduler({ site: 'costly', pool, threshold: 0, timeout: 1000, inlineBudget: 0, rememberTimeout: 0 })
  await t.rejects(Promise.resolve(costly.run(v2, page(20_000, 'huge'), { path: '/huge' })), { code: 'LIVERY_ERR_TRANSFORM_TIMEOUT' })
  t.equal(pool.stats().timeouts, 1)
  const before = loads.length
  for (let i = 0; i < 3; i++) t.match(html(await site.run(v2, page(3, `after ${i}`), { path: `/after/${i}` })), /class="v2"/)
  t.same(loads.slice(before), [{ site: 'site', version: 'v2' }], 'the replacement thread read the current version once')
  t.same(shared.map(m => m.version), ['v1', 'v2'], 'nothing was serialised again')
})

t.test('a thread holds one version per site, and a bounded number of sites', async t => {
  const v1 = await compileVersion('v1')
  const v2 = await compileVersion('v2')
  const themes = new ThreadThemes()
  t.equal(themes.get('a', shareTheme(v1, 'a')).loaded, true)
  t.equal(themes.get('a', shareTheme(v1, 'a')).loaded, false, 'the same version is not read again')
  const second = themes.get('a', shareTheme(v2, 'a'))
  t.equal(second.loaded, true)
  t.equal(second.compiled.version, 'v2')
  t.equal(themes.size, 1, 'the old version was dropped')
  // A recompile of the same version is a new Compiled object with its own id: read again, not confused with the first.
  const recompiled = await compileVersion('v2')
  t.not(shareTheme(recompiled, 'a').id, shareTheme(v2, 'a').id)
  t.equal(shareTheme(v2, 'b'), shareTheme(v2, 'a'), 'one Compiled object is serialised once, whichever site asks')
  t.equal(themes.get('a', shareTheme(recompiled, 'a')).loaded, true)
  for (let i = 0; i < 100; i++) themes.get(`site-${i}`, shareTheme(v1, `site-${i}`))
  t.equal(themes.size, 64)
})
