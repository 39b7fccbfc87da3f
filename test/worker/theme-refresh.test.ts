/**
 * Theme refresh on the worker tier (issue 13): the theme is refreshed in the
 * background before its copy goes stale, so when the theme server goes down
 * between two scheduled refreshes the failure shows in the log and the
 * metrics while every page is still themed. A client requests pages the
 * whole time; the test moves on when the refresh events arrive, never after
 * a fixed time. Short schedule: fetch.ttl 2 s, refreshed 600 ms ahead.
 */
import t from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { ThemeJobMessage } from '../../src/worker/channels.ts'
import { startContent, startGateway, startThemeServer, tempDir, themeOf, themedConfig, writeRules, type Reply } from '../gateway-fetch/fixture.ts'

function nextThemeJob (pred: (m: ThemeJobMessage) => boolean): Promise<ThemeJobMessage> {
  return new Promise(resolve => {
    const fn = (m: unknown): void => {
      if (!pred(m as ThemeJobMessage)) return
      unsubscribe('livery:worker:theme', fn)
      resolve(m as ThemeJobMessage)
    }
    subscribe('livery:worker:theme', fn)
  })
}

t.test('the theme server goes down between two scheduled refreshes: the failure is logged and counted, pages stay themed', async t => {
  const dir = tempDir(t)
  const theme = await startThemeServer(t, 'ok', 'v1')
  const content = await startContent(t, 'no-store')
  const config = themedConfig(dir, [{ name: 'site', upstream: content.url, rules: writeRules(dir), base: `${theme.origin}/` }],
    { ttl: '2s', minTtl: '500ms' }, { worker: { themeRefreshAhead: '600ms', attempts: 2, backoff: '50ms', themeCheck: '0s' } })
  // Subscribed before the gateway starts: the first refresh is scheduled as it loads.
  const firstOk = nextThemeJob(m => m.site === 'site' && !m.check && m.ok && (m.refreshed ?? 0) >= 1)
  const g = await startGateway(t, config)

  // Uncacheable pages: every response is themed from the theme copy in hand at that moment.
  const replies: Reply[] = []
  let failedAt = -1
  let stop = false
  const client = (async () => {
    while (!stop) replies.push(await g.get('/page'))
  })()

  await firstOk
  t.ok(theme.seen() >= 2, 'the start-up load and a background refresh fetched the theme')
  const failed = nextThemeJob(m => m.site === 'site' && !m.check && !m.ok)
  theme.set('500')
  const failure = await failed
  failedAt = replies.length
  t.match(failure.error, /refreshing theme resources http:\/\/127\.0\.0\.1:\d+\/theme\.html failed/, 'the failing URL is named')
  t.ok(theme.seen() >= 1, 'the refresh reached the theme server')
  t.ok(g.logs.find({ msg: 'theme refresh failed; pages stay themed from the copies in hand', site: 'site' }).length >= 1, 'logged')
  const metrics = await g.get('/_livery/metrics')
  t.match(metrics.body, /livery_theme_refresh_failures_total\{site="site"\} [1-9]/, 'counted in the metrics')
  t.match(metrics.body, /livery_theme_refreshes_total\{site="site"\} [1-9]/)

  // Keep requesting until at least 10 more pages went out after the failure was known.
  const target = replies.length + 10
  while (replies.length < target) await new Promise(resolve => setImmediate(resolve))
  stop = true
  await client
  t.ok(failedAt > 0, `${failedAt} pages before the failure was noticed`)
  const unthemed = replies.filter(r => r.status !== 200 || themeOf(r.body) !== 'v1' || r.headers['x-livery-theme'] !== undefined)
  t.equal(unthemed.length, 0, `all ${replies.length} pages themed, before and after the failure`)
  t.equal(g.logs.find({ msg: 'theme unavailable; page served unthemed' }).length, 0, 'no page went out unthemed')
})

t.test('a themed site added by a reload gets its background refresh too', async t => {
  const dir = tempDir(t)
  const theme = await startThemeServer(t, 'ok', 'v1')
  const content = await startContent(t, 'no-store')
  const rules = writeRules(dir)
  const site = (name: string, hosts: string[]): { name: string, hosts: string[], upstream: string, rules: string, base: string } => ({ name, hosts, upstream: content.url, rules, base: `${theme.origin}/` })
  const top = { worker: { themeRefreshAhead: '600ms', themeCheck: '0s' } }
  const g = await startGateway(t, themedConfig(dir, [site('first', ['first.test'])], { ttl: '2s', minTtl: '500ms' }, top))
  const added = nextThemeJob(m => m.site === 'second' && !m.check && m.ok && (m.refreshed ?? 0) >= 1)
  const result = await g.gateway.reload(themedConfig(dir, [site('first', ['first.test']), site('second', ['second.test'])], { ttl: '2s', minTtl: '500ms' }, top))
  t.equal(result.applied, true)
  t.match(await added, { site: 'second', ok: true }, 'the new site\'s theme was refreshed ahead of its expiry')
})
