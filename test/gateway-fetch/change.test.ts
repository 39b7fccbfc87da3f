// Issue 4 acceptance: a changed theme is served within ttl + fetch.wait, and
// no page themed with the old version is served after that, cached pages
// included (the theme version is part of their cache key).
import t from 'tap'
import { startContent, startGateway, startThemeServer, tempDir, themeOf, themedConfig, timerLateness, writeRules, type Reply } from './fixture.ts'

const pause = (ms: number): Promise<void> => new Promise(resolve => { setTimeout(resolve, ms).unref() })

t.test('a changed theme replaces the old one within ttl + wait, for cached and uncacheable pages', async t => {
  const theme = await startThemeServer(t, 'ok', 'old')
  const content = await startContent(t, path => path.startsWith('/cached') ? 'max-age=600' : 'no-store')
  const dir = tempDir(t)
  const config = themedConfig(dir, [{ name: 'change', upstream: content.url, rules: writeRules(dir), base: `${theme.origin}/` }], { wait: '150ms' })
  const { ttl, wait } = config.fetch
  const href = `${theme.origin}/theme.html`
  const gw = await startGateway(t, config)

  t.equal(themeOf((await gw.get('/cached')).body), 'old', 'cached page themed with the old theme')
  const hit = await gw.get('/cached')
  t.equal(hit.headers['x-cache'], 'HIT', 'and served from the cache')
  t.equal(themeOf(hit.body), 'old')

  const copy = gw.gateway.fetchPool.peek(href)!
  theme.set('ok', 'new')
  const changedAt = Date.now()
  // The deadline for the new theme: ttl + wait after the change (the old copy
  // was fetched before it, so it goes stale no later than changedAt + ttl).
  const deadline = changedAt + ttl + wait
  const replies: Reply[] = []
  const probes: Array<Promise<number>> = []
  let i = 0
  // Poll both pages until well past the deadline.
  while (Date.now() < deadline + 700) {
    probes.push(timerLateness(25))
    replies.push(await gw.get(i % 2 === 0 ? '/cached' : `/fresh/${i}`))
    i++
    await pause(25)
  }
  const lateness = Math.max(...await Promise.all(probes))
  const firstNew = replies.find(r => themeOf(r.body) === 'new')
  t.ok(firstNew !== undefined, 'the new theme was served')
  const switchAfter = firstNew!.sentAtEpoch - changedAt
  t.comment(`old copy fresh until change + ${copy.freshUntil - changedAt} ms; first new-theme response sent at change + ${switchAfter} ms; deadline change + ${ttl + wait} ms (+ 50 + lateness ${lateness.toFixed(0)})`)
  t.ok(firstNew!.sentAtEpoch <= deadline + 50 + lateness, 'the new theme was served within ttl + wait of the change')
  const lateOld = replies.filter(r => r.sentAtEpoch >= firstNew!.sentAtEpoch && themeOf(r.body) !== 'new')
  t.same(lateOld.map(r => r.body.slice(0, 80)), [], 'no page themed with the old theme (or unthemed) after the first new one')
  const afterDeadline = replies.filter(r => r.sentAtEpoch > deadline + 50 + lateness)
  t.ok(afterDeadline.length >= 10 && afterDeadline.every(r => r.status === 200 && themeOf(r.body) === 'new'), `all ${afterDeadline.length} pages after the deadline themed with the new theme`)
  t.ok(afterDeadline.some(r => r.headers['x-cache'] === 'HIT'), 'including cache hits keyed by the new theme version')
  t.equal(theme.seen(), 1, 'one refresh fetched the new theme')
})
