// Issue 4 acceptance: a theme server that accepts connections and never
// answers holds no themed response longer than fetch.wait (stale copy) or
// fetch.missWait (no copy), and never gets more than fetch.concurrency connections.
import t from 'tap'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import {
  startContent, startGateway, startThemeServer, tempDir, themeOf, themedConfig, timerLateness, until, untilStale, watchStalls, writeRules,
  type Reply,
} from './fixture.ts'

t.test('with a stale copy: every themed response within fetch.wait + 50 ms, at most fetch.concurrency connections', async t => {
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
  const config = themedConfig(dir, sites, { concurrency: 2, wait: '150ms' })
  const gw = await startGateway(t, config)
  // One request per site per wave: four refresh jobs compete for two slots,
  // and the gateway's own service time stays small next to the wait.
  const perWave = names.length
  for (const name of names) {
    const r = await gw.get('/warm', `${name}.test`)
    t.equal(themeOf(r.body), 'v1', `site ${name} is themed`)
  }
  t.equal(theme.requests.length, 4, 'each theme fetched once at start-up')

  // Warm connections and code paths, so the waves below measure the wait, not a cold start.
  for (let i = 0; i < 3; i++) {
    const base = await Promise.all(Array.from({ length: perWave }, (_, j) => gw.get(`/base/${i}/${j}`, `${names[j % names.length]}.test`)))
    t.comment(`healthy wave ${i}: ${base.map(r => r.ms.toFixed(0)).join(' ')}`)
  }
  theme.set('hang')
  for (const s of sites) await untilStale(gw.gateway, `${s.base}theme.html`)

  // Waves of concurrent requests over 1.5 s: the first wave starts the
  // refreshes and waits for them (bounded by wait); later ones join jobs that
  // have already run past wait, or are due again after the themer's recheck.
  const wait = config.fetch.wait
  const replies: Reply[] = []
  let lateness = 0
  const end = performance.now() + 1_500
  let wave = 0
  while (performance.now() < end) {
    // A probe timer due at the bound itself, and a stall watch over the whole
    // wave: whatever starves this event loop (the box, or this process's own
    // client and upstream) delays a response by no more than they show.
    const late = timerLateness(wait + 50)
    const stalls = watchStalls()
    const got = await Promise.all(Array.from({ length: perWave }, (_, i) => gw.get(`/w${wave}/${i}`, `${names[i % names.length]}.test`)))
    lateness = Math.max(lateness, await late, stalls.stop())
    replies.push(...got)
    t.comment(`wave ${wave}: ${got.map(r => r.ms.toFixed(0)).join(' ')}`)
    wave++
    await new Promise<void>(resolve => { setTimeout(resolve, 100).unref() })
  }
  // Whole milliseconds: a response completing in the same loop turn as the probe lands a fraction after it.
  const bound = Math.ceil(wait + 50 + lateness)
  const slowest = Math.round(Math.max(...replies.map(r => r.ms)))
  t.comment(`${replies.length} responses in ${wave} waves; slowest ${slowest} ms; bound ${bound} ms (wait ${wait} + 50 + event-loop lateness ${lateness.toFixed(0)})`)
  let bad = 0
  for (const r of replies) {
    if (r.status !== 200 || themeOf(r.body) !== 'v1' || Math.round(r.ms) > bound) bad++
  }
  t.equal(bad, 0, 'every response is 200, themed with the stale copy, within the bound')
  t.ok(slowest <= bound, `slowest response ${slowest} ms <= ${bound} ms`)
  t.ok(theme.maxOpen <= config.fetch.concurrency, `theme server saw at most ${theme.maxOpen} connections at once (concurrency ${config.fetch.concurrency})`)
  t.ok(theme.connections <= config.fetch.concurrency, `theme server saw ${theme.connections} connections in all`)
  t.ok(theme.seen() >= 1 && theme.seen() <= config.fetch.concurrency, `${theme.seen()} refreshes reached the hung server`)
})

t.test('with no copy: responses within fetch.missWait, unthemed, X-Livery-Theme: unavailable, and a log line naming the theme', async t => {
  const theme = await startThemeServer(t, 'hang')
  const content = await startContent(t)
  const dir = tempDir(t)
  const config = themedConfig(dir, [{ name: 'cold', upstream: content.url, rules: writeRules(dir), base: `${theme.origin}/` }], { missWait: '1s' })
  const href = `${theme.origin}/theme.html`
  const gw = await startGateway(t, config)
  const missWait = config.fetch.missWait

  const replies: Reply[] = []
  let lateness = 0
  // Two waves: one while the start-up job is still hung, one after the
  // themer's next check (minTtl later) has come due.
  for (let wave = 0; wave < 2; wave++) {
    const late = timerLateness(missWait)
    const stalls = watchStalls()
    replies.push(...await Promise.all(Array.from({ length: 20 }, (_, i) => gw.get(`/cold/${wave}/${i}`))))
    lateness = Math.max(lateness, await late, stalls.stop())
    if (wave === 0) await until(() => performance.now() - replies[0].sentAt > config.fetch.minTtl + 150, 5_000, 'the themer recheck')
  }
  const bound = missWait + 50 + lateness
  const slowest = Math.max(...replies.map(r => r.ms))
  t.comment(`slowest ${slowest.toFixed(0)} ms; bound ${bound.toFixed(0)} ms`)
  let bad = 0
  for (const r of replies) {
    if (r.status !== 200 || r.headers['x-livery-theme'] !== 'unavailable' || themeOf(r.body) !== undefined || !r.body.includes('PAGE /cold/') || r.ms > bound) bad++
  }
  t.equal(bad, 0, 'every response is 200, unthemed, marked unavailable, within missWait')
  t.ok(slowest <= bound, `slowest response ${slowest.toFixed(0)} ms <= ${bound.toFixed(0)} ms`)
  const line = await gw.logs.waitFor({ theme: href })
  t.match(line, { level: 40, msg: /theme is unavailable/, err: new RegExp(href.replace(/[.]/g, '\\.')) }, 'the log names the theme URL and the cause')
  t.match(String(line.err), /wait|timed out|within/i, `cause: ${String(line.err)}`)
  t.equal(theme.maxOpen, 1, 'one connection to the hung server')
})
