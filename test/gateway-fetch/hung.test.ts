// Issue 4 acceptance: a theme server that accepts connections and never
// answers holds no themed response until its fetch ends: the fetch pool
// releases it after fetch.wait (stale copy) or fetch.missWait (no copy), and
// the server never gets more than fetch.concurrency connections.
//
// Issue 10: "within wait + 50 ms" measured the busy machine as much as the
// gateway (a 330 ms response against a 302 ms bound). The pool's own tests
// (test/fetcher/hung.test.ts) prove the wait by timer ordering; here the
// hung fetches get a total deadline of a minute, so a response that waited
// for its fetch could not arrive before the test ends, and the assertions
// are orderings: every response arrived while the fetches were still hung,
// released by the pool's wait (its stale_served reason, or its error code).
import t from 'tap'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import {
  startContent, startGateway, startThemeServer, tempDir, themeOf, themedConfig, until, untilStale, writeRules,
  type Reply,
} from './fixture.ts'
import { collect } from '../fetcher/helpers.ts'

/** Longer than any test here runs: a hung fetch never ends by itself before the assertions. */
const hungFor = { connect: '1s', firstByte: '60s', betweenBytes: '60s', total: '60s' }

t.test('with a stale copy: every themed response is released by fetch.wait, at most fetch.concurrency connections', async t => {
  const theme = await startThemeServer(t)
  const content = await startContent(t)
  const dir = tempDir(t)
  const names = ['a', 'b', 'c', 'd']
  // Four sites, each with its own theme URL on the one theme server, so four
  // refresh jobs compete for fetch.concurrency = 2 slots.
  const sites = names.map(name => {
    mkdirSync(join(dir, name))
    return { name, hosts: [`${name}.test`], upstream: content.url, rules: writeRules(join(dir, name)), base: `${theme.origin}/${name}/` }
  })
  const config = themedConfig(dir, sites, { concurrency: 2, wait: '150ms', timeouts: hungFor })
  const gw = await startGateway(t, config)
  // One request per site per wave: four refresh jobs compete for two slots,
  // and the gateway's own service time stays small next to the wait.
  const perWave = names.length
  // Counted before any page: on a busy machine the warm-up below can outlast
  // the 1 s ttl, and a refresh then is right.
  t.equal(theme.requests.length, 4, 'each theme fetched once at start-up')
  for (const name of names) {
    const r = await gw.get('/warm', `${name}.test`)
    t.equal(themeOf(r.body), 'v1', `site ${name} is themed`)
  }

  // Warm connections and code paths, so the waves below measure the wait, not a cold start.
  for (let i = 0; i < 3; i++) {
    const base = await Promise.all(Array.from({ length: perWave }, (_, j) => gw.get(`/base/${i}/${j}`, `${names[j % names.length]}.test`)))
    t.comment(`healthy wave ${i}: ${base.map(r => r.ms.toFixed(0)).join(' ')}`)
  }
  theme.set('hang')
  // Counted from the hang: a keep-alive connection that sat idle past its
  // timeout while a busy machine crawled through the warm-up is reopened,
  // which says nothing about the hung fetches (4 in all once, at a load of 25).
  const connectionsBefore = theme.connections
  for (const s of sites) await untilStale(gw.gateway, `${s.base}theme.html`)

  // Waves of concurrent requests over 1.5 s: the first wave starts the
  // refreshes and waits for them (bounded by wait); later ones join jobs that
  // have already run past wait, or are due again after the themer's recheck.
  const wait = config.fetch.wait
  const ended = collect(t, 'livery:fetch:job_end')
  const stale = collect(t, 'livery:fetch:stale_served') as Array<{ url: string, reason: string }>
  const replies: Reply[] = []
  // Waves of concurrent requests, paced by the pool's wait itself: the first
  // wave starts the refreshes and is released by wait; later ones join jobs
  // already past wait, or are due again after the themer's recheck.
  for (let wave = 0; wave < 6; wave++) {
    const got = await Promise.all(Array.from({ length: perWave }, (_, i) => gw.get(`/w${wave}/${i}`, `${names[i % names.length]}.test`)))
    replies.push(...got)
    t.comment(`wave ${wave}: ${got.map(r => r.ms.toFixed(0)).join(' ')} ms`)
    await new Promise<void>(resolve => { setTimeout(resolve, wait).unref() })
  }
  t.same(ended, [], 'every response arrived while the refreshes were still hung: none waited for its fetch')
  let bad = 0
  for (const r of replies) {
    if (r.status !== 200 || themeOf(r.body) !== 'v1') bad++
  }
  t.equal(bad, 0, `all ${replies.length} responses are 200, themed with the stale copy`)
  const themeUrls = new Set(sites.map(s => `${s.base}theme.html`))
  t.ok(stale.length >= sites.length && stale.every(m => themeUrls.has(m.url) && m.reason === 'wait'),
    `the stale copies were released by fetch.wait (${stale.length} times, every site)`)
  t.same(new Set(stale.map(m => m.url)), themeUrls, 'for every site')
  t.ok(theme.maxOpen <= config.fetch.concurrency, `theme server saw at most ${theme.maxOpen} connections at once (concurrency ${config.fetch.concurrency})`)
  const opened = theme.connections - connectionsBefore
  t.ok(opened <= config.fetch.concurrency, `the hung fetches opened ${opened} connections in all (${theme.connections} since start-up)`)
  t.ok(theme.seen() >= 1 && theme.seen() <= config.fetch.concurrency, `${theme.seen()} refreshes reached the hung server`)
})

t.test('with no copy: responses released by fetch.missWait, unthemed, X-Livery-Theme: unavailable, and a log line naming the theme', async t => {
  const theme = await startThemeServer(t, 'hang')
  const content = await startContent(t)
  const dir = tempDir(t)
  const config = themedConfig(dir, [{ name: 'cold', upstream: content.url, rules: writeRules(dir), base: `${theme.origin}/` }], { missWait: '1s', timeouts: hungFor })
  const href = `${theme.origin}/theme.html`
  const gw = await startGateway(t, config)
  const ended = collect(t, 'livery:fetch:job_end')

  const replies: Reply[] = []
  // Two waves: one while the start-up job is still hung, one after the
  // themer's next check (minTtl later) has come due.
  for (let wave = 0; wave < 2; wave++) {
    replies.push(...await Promise.all(Array.from({ length: 20 }, (_, i) => gw.get(`/cold/${wave}/${i}`))))
    if (wave === 0) await until(() => performance.now() - replies[0].sentAt > config.fetch.minTtl + 150, 20_000, 'the themer recheck')
  }
  t.comment(`slowest ${Math.max(...replies.map(r => r.ms)).toFixed(0)} ms (missWait ${config.fetch.missWait})`)
  t.same(ended, [], 'every response arrived while the theme fetch was still hung: none waited for it')
  let bad = 0
  for (const r of replies) {
    if (r.status !== 200 || r.headers['x-livery-theme'] !== 'unavailable' || themeOf(r.body) !== undefined || !r.body.includes('PAGE /cold/')) bad++
  }
  t.equal(bad, 0, 'every response is 200, unthemed, marked unavailable')
  const line = await gw.logs.waitFor({ theme: href })
  t.match(line, { level: 40, msg: /theme is unavailable/, err: new RegExp(href.replace(/[.]/g, '\\.')) }, 'the log names the theme URL and the cause')
  t.match(String(line.err), /wait|timed out|within/i, `cause: ${String(line.err)}`)
  t.equal(theme.maxOpen, 1, 'one connection to the hung server')
})
