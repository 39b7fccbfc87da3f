/**
 * Prefetch and the periodic theme check on the worker tier (issue 13): a
 * sitemap's pages are warmed through the in-process runner, no faster than
 * worker.rate; `livery warm` enqueues a prefetch on Redis for the workers;
 * the theme check's result reaches /_livery/status and the metrics.
 */
import t from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import type { JobMessage, ThemeJobMessage } from '../../src/worker/channels.ts'
import { BullQueue } from '../../src/worker/bullmq-queue.ts'
import { startGateway, startUpstream } from '../helpers/servers.ts'
import { runCli } from '../helpers/cli.ts'
import { deletePrefix, sharedRedisUrl } from '../helpers/redis.ts'
import { startGateway as startThemedGateway, startContent, startThemeServer, tempDir, themedConfig, writeRules } from '../gateway-fetch/fixture.ts'

t.test('a sitemap prefetch warms every page it lists, starting no more than worker.rate jobs a second', async t => {
  const hits = new Map<string, number>()
  const pages = Array.from({ length: 6 }, (_, i) => `/page/${i}`)
  const up = await startUpstream(t, (req, res) => {
    const path = req.url ?? '/'
    hits.set(path, (hits.get(path) ?? 0) + 1)
    if (path === '/sitemap.xml') {
      res.writeHead(200, { 'content-type': 'application/xml' })
      res.end(`<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">${pages.map(p => `<url><loc>http://pre.test${p}</loc></url>`).join('')}</urlset>`)
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=300' })
    res.end(`page ${path}`)
  })
  const g = await startGateway(t, {
    upstream: up.url,
    site: { hosts: ['pre.test'], warm: { sitemap: `${up.url}/sitemap.xml` } },
    raw: { worker: { rate: 20, themeCheck: '0s' } },
  })
  const starts: number[] = []
  const done = new Set<string>()
  let allDone: () => void = () => {}
  const finished = new Promise<void>(resolve => { allDone = resolve })
  const onJob = (m: unknown): void => {
    const msg = m as JobMessage
    if (msg.kind !== 'warm') return
    if (msg.event === 'start') starts.push(performance.now())
    if (msg.event === 'done') { done.add(msg.key); if (done.size === pages.length) allDone() }
  }
  subscribe('livery:worker:job', onJob)
  t.teardown(() => unsubscribe('livery:worker:job', onJob))
  t.equal(await g.gateway.worker.prefetch.enqueue('test', { site: 'test' }), true)
  await finished
  t.same([...done].sort(), pages.map(p => `http://pre.test${p}`).sort(), 'a warm job per <loc>')
  for (const p of pages) {
    const r = await request(g.url + p, { headers: { host: 'pre.test' }, dispatcher: g.agent })
    await r.body.dump()
    t.equal(r.headers['x-cache'], 'HIT', `${p} is a HIT`)
    t.equal(hits.get(p), 1)
  }
  // A lower bound on spacing holds however busy the machine: starts are 1/rate = 50 ms apart at least.
  const gaps = starts.slice(1).map((s, i) => s - starts[i])
  t.ok(gaps.every(gap => gap >= 45), `warm jobs started at most 20 a second (smallest gap ${Math.min(...gaps).toFixed(0)} ms)`)
})

t.test('livery warm --urls enqueues a prefetch on Redis for the workers', async t => {
  const dir = t.testdir({ 'urls.txt': '# pages\n/a\nhttp://w.test/b\n' })
  const prefix = `livery-test:warm-cli:${process.pid}:${randomBytes(4).toString('hex')}:`
  const configFile = join(dir, 'livery.yaml')
  writeFileSync(configFile, JSON.stringify({ cache: { directory: join(dir, 'cache'), redis: { url: sharedRedisUrl, prefix } }, sites: [{ name: 'w', hosts: ['w.test'], upstream: 'http://127.0.0.1:1' }] }))
  const q = new BullQueue<{ site: string, urls?: string[] }>({ kind: 'prefetch', url: sharedRedisUrl, prefix: `${prefix}worker`, attempts: 1, backoff: 0, rate: 0, maxDeadLetters: 10 })
  t.teardown(async () => { await q.close(); await deletePrefix(sharedRedisUrl, prefix) })
  const out = await runCli(['warm', '--config', configFile, '--site', 'w', '--urls', join(dir, 'urls.txt')])
  t.equal(out.code, 0, out.stderr)
  t.match(out.stdout, /prefetch of site w enqueued/)
  t.match(await q.depth(), { waiting: 1 }, 'one prefetch job waits for a worker')
  t.match(await runCli(['warm', '--config', configFile, '--site', 'nope']), { code: 2, stderr: /no site is named "nope"/ })
  const noRedis = join(dir, 'no-redis.yaml')
  writeFileSync(noRedis, JSON.stringify({ cache: { directory: join(dir, 'cache') }, sites: [{ name: 'w', upstream: 'http://127.0.0.1:1' }] }))
  t.match(await runCli(['worker', '--config', noRedis]), { code: 2, stderr: /livery worker needs cache\.redis\.url/ }, 'without Redis there is no queue to consume')
})

t.test('the periodic theme check shows in /_livery/status, the metrics and the log', async t => {
  const dir = tempDir(t)
  const theme = await startThemeServer(t, 'ok', 'v1')
  const content = await startContent(t)
  const config = themedConfig(dir, [{ name: 'site', upstream: content.url, rules: writeRules(dir), base: `${theme.origin}/` }], {}, { worker: { themeCheck: '100ms', themeRefreshAhead: '0s' } })
  const failedCheck = new Promise<ThemeJobMessage>(resolve => {
    const fn = (m: unknown): void => {
      const msg = m as ThemeJobMessage
      if (!msg.check || msg.ok) return
      unsubscribe('livery:worker:theme', fn)
      resolve(msg)
    }
    subscribe('livery:worker:theme', fn)
  })
  const g = await startThemedGateway(t, config)
  theme.set('500')
  const msg = await failedCheck
  t.match(msg.error, /cannot be fetched/)
  const status = JSON.parse((await g.get('/_livery/status')).body) as { worker: { themeCheck: { ok: boolean, problems: string[] } } }
  t.match(status.worker.themeCheck, { ok: false, problems: [/site site: theme http:\/\/127\.0\.0\.1:\d+\/theme\.html cannot be fetched/] })
  t.match((await g.get('/_livery/metrics')).body, /livery_theme_check_ok 0/)
  t.ok(g.logs.find({ msg: 'theme check found problems' }).length >= 1, 'logged')
})
