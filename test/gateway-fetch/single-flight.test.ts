// Issue 4 acceptance: 500 concurrent requests that need the same cold theme
// make exactly one request to the theme server.
import t from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { coarseNow } from '../../src/clock.ts'
import { startContent, startGateway, startThemeServer, tempDir, themeOf, themedConfig, until, writeRules } from './fixture.ts'

t.test('500 concurrent requests for pages needing a cold theme: one theme request, every page themed', async t => {
  // The theme server fails at start-up, so the gateway starts with no copy at all.
  const theme = await startThemeServer(t, '500')
  const content = await startContent(t) // no-store: every request is themed afresh
  const dir = tempDir(t)
  const rules = writeRules(dir)
  const base = `${theme.origin}/`
  const config = themedConfig(dir, [{ name: 'cold', upstream: content.url, rules, base,
    // Room for all 500 at once: this test is about theme fetches, not load shedding.
    extra: {
      pool: { maxConcurrent: 512, maxQueue: 512, queueTimeout: '30s' },
      // Size alone sends a page to a thread: on a busy machine the measured
      // cost per byte sent these small pages to the one thread, its queue of
      // 32 filled and over a hundred went out unthemed (issue 10).
      theme: { rules, base, inlineBudget: '0s' },
    },
  }], {
    // A long ttl: 500 requests can take over a second on a loaded box, and a
    // refresh after ttl would be a second, legitimate, theme request.
    ttl: '60s',
  }, { pool: { maxEventLoopDelay: '0s', queueTimeout: '30s' } })
  // When each failed theme fetch ended: the backoff runs from the last one.
  let failedAt = 0
  const onError = (): void => { failedAt = Date.now() }
  subscribe('livery:fetch:error', onError)
  t.teardown(() => unsubscribe('livery:fetch:error', onError))
  const gw = await startGateway(t, config)
  t.equal(theme.requests.length, 1, 'start-up tried the theme once')
  const before = await gw.get('/before')
  t.equal(before.headers['x-livery-theme'], 'unavailable', 'no copy yet: pages go out unthemed')
  // A request or readiness probe may retry the theme once more: every try so far must have failed and ended.
  await until(() => failedAt > 0 && gw.gateway.fetchPool.stats().jobsInFlight === 0, 20_000, 'the failed theme fetches to end')

  // The failure is backed off for minTtl (and the themer rechecks after it):
  // wait for that to pass, then bring the theme server up.
  // By the coarse clock the themer reads, which lags Date.now by 100 ms or, on
  // a busy machine, more: the first pages were otherwise unthemed (issue 10).
  await until(() => coarseNow() > failedAt + config.fetch.minTtl + 150 && gw.gateway.fetchPool.stats().jobsInFlight === 0, 20_000, 'the backoff to run out')
  theme.set('ok', 'cold1')
  const jobs: unknown[] = []
  const onJob = (m: unknown): void => { jobs.push(m) }
  subscribe('livery:fetch:job_start', onJob)
  t.teardown(() => unsubscribe('livery:fetch:job_start', onJob))

  const started = performance.now()
  const replies = await Promise.all(Array.from({ length: 500 }, (_, i) => gw.get(`/page/${i}`)))
  t.comment(`500 requests answered in ${(performance.now() - started).toFixed(0)} ms`)
  const statuses = new Map<number, number>()
  for (const r of replies) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
  t.same([...statuses], [[200, 500]], 'all 500 answered 200')
  for (const r of replies.filter(r => r.status !== 200).slice(0, 2)) t.comment(`${r.status} ${r.body}`)
  const themed = replies.filter(r => themeOf(r.body) === 'cold1').length
  t.equal(themed, 500, 'all 500 themed with the newly fetched theme')
  t.equal(theme.seen(), 1, 'exactly one request reached the theme server')
  t.equal(jobs.length, 1, 'one fetch job')
  t.equal(content.hits(), 501, 'every request went upstream (uncacheable content), so each was themed on its own')
})
