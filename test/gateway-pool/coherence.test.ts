/**
 * Issue 12: one gateway of two processes (`livery serve`, processes: 2, no
 * Redis) acts as one cache. Each request goes on a fresh connection, so the
 * primary hands them to both workers in turn.
 *
 * - item 1: a purge (the API, the PURGE method, the invalidation after an
 *   unsafe method) reaches both processes before it is answered: no answer
 *   after it carries the purged copy. Root cause on the old code: the purge
 *   ran in the process that received it only.
 * - item 2: concurrent cold misses spread over both processes make one
 *   upstream request, also right after a hard purge. Root cause: each
 *   process had its own waiting list.
 */
import t from 'tap'
import type { ServerResponse } from 'node:http'
import { join } from 'node:path'
import { startCliGateway } from '../helpers/cli-gateway.ts'
import { cacheable, countingUpstream, until } from '../gateway-tiers/helpers.ts'
import { metricValue } from './fixture.ts'
import { freePort } from '../helpers/redis.ts'
import { writeFileSync } from 'node:fs'

const token = 'coherence-token'
const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }

t.test('two processes, one cache', async t => {
  const held: Array<() => void> = []
  const up = await countingUpstream(t, {
    '/cold': (_req, res: ServerResponse, n) => { held.push(() => { res.writeHead(200, cacheable).end(`v${n} /cold`) }) },
  })
  const dir = t.testdir({})
  // A themed site whose theme server is down: every process opens that origin's circuit (item 6).
  const deadTheme = `http://127.0.0.1:${await freePort()}/`
  const rules = join(dir, 'rules.xml')
  writeFileSync(rules, '<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css"><theme href="theme.html"/></rules>')
  const gw = await startCliGateway(t, dir, 'coherence', [
    'listen: { host: 127.0.0.1, port: 0 }',
    'processes: 2',
    'shutdownTimeout: 1s',
    'log: { level: info, access: true }',
    `admin: { token: ${token} }`,
    'threads: 1',
    // Lag shedding off, as for every in-process test gateway (withoutLagShedding in
    // test/helpers/servers.ts): a starved machine stalls a worker's loop past the
    // 1 s default during a burst, and a 503 of the burst is no answer about single-flight.
    'pool: { maxEventLoopDelay: 0s }',
    `cache: { directory: ${JSON.stringify(join(dir, 'cache'))}, disk: { maxSize: 0 }, memory: { maxSize: 64MB }, lockTimeout: 2m }`,
    'fetch: { circuit: { failures: 1, coolDown: 1h, maxCoolDown: 1h } }',
    'sites:',
    `  - { name: themed, hosts: [themed.test], upstream: ${JSON.stringify(up.url)}, theme: { rules: ${JSON.stringify(rules)}, base: ${JSON.stringify(deadTheme)} } }`,
    // The waiting list must outlast however long a busy machine takes to get every request in.
    `  - { name: site, hosts: ["*"], upstream: ${JSON.stringify(up.url)}, timeouts: { firstByte: 2m } }`,
  ], 2)
  t.equal(gw.workers.length, 2, 'two workers listen')

  /** Requests `path` until both workers have answered it from their cache; returns the bodies seen. */
  const warmBoth = async (path: string): Promise<Set<string>> => {
    const bodies = new Set<string>()
    const hitBy = (pid: number): boolean => gw.lines.some(l => l.type === 'access' && l.path === path && l.pid === pid && l.cache === 'HIT')
    for (let i = 0; i < 40 && !gw.workers.every(hitBy); i++) {
      const r = await gw.request(path)
      t.equal(r.status, 200)
      bodies.add(r.body)
      // The access line is written when the response ends; wait for it before deciding.
      await gw.waitFor(l => l.type === 'access' && l.path === path && gw.lines.filter(x => x.type === 'access' && x.path === path).length > i)
    }
    t.ok(gw.workers.every(hitBy), `both processes hold ${path}`)
    return bodies
  }

  /** After a purge was answered, no answer on either process carries an old body. */
  const noOldCopies = async (path: string, old: Set<string>): Promise<void> => {
    const after: string[] = []
    for (let i = 0; i < 10; i++) after.push((await gw.request(path)).body)
    const stale = after.filter(b => old.has(b))
    t.same(stale, [], `no answer after the purge carried a purged copy of ${path} (${[...old].join(', ')})`)
  }

  await t.test('item 1: the purge API reaches both processes before it answers', async t => {
    const old = await warmBoth('/api')
    const r = await gw.request('/_livery/purge', { method: 'POST', headers: auth, body: JSON.stringify({ urls: ['http://site.test/api'] }) })
    t.equal(r.status, 200, r.body)
    const body = JSON.parse(r.body) as { purged: number, acknowledged: number, missing: string[] }
    t.equal(body.acknowledged, 1, 'the sibling process acknowledged it')
    t.same(body.missing, [], 'nobody missing')
    await noOldCopies('/api', old)
  })

  await t.test('item 1: so does the PURGE method', async t => {
    const old = await warmBoth('/method')
    const r = await gw.request('/method', { method: 'PURGE', headers: { authorization: `Bearer ${token}` } })
    t.equal(r.status, 200, r.body)
    await noOldCopies('/method', old)
  })

  await t.test('item 1: so does the invalidation after an unsafe method', async t => {
    const old = await warmBoth('/unsafe')
    const r = await gw.request('/unsafe', { method: 'POST', body: 'x' })
    t.equal(r.status, 200)
    await noOldCopies('/unsafe', old)
  })

  /** n concurrent requests for /cold on fresh connections, held at the upstream until both processes have them waiting. */
  const burst = async (n: number): Promise<string[]> => {
    const before = up.hits('/cold')
    const replies = Array.from({ length: n }, () => gw.request('/cold'))
    // Every request is in flight in one of the processes (the metrics request itself is one more).
    await until(async () => metricValue((await gw.request('/_livery/metrics')).body, 'livery_http_requests_active') >= n + 1, 90_000, 'every request to be waiting')
    t.ok(up.hits('/cold') - before >= 1, 'the upstream was asked')
    for (const release of held.splice(0)) release()
    const got = await Promise.all(replies)
    t.ok(got.every(r => r.status === 200), 'every request answered 200')
    return got.map(r => r.body)
  }

  await t.test('item 2: concurrent cold misses over both processes make one upstream request', async t => {
    const bodies = await burst(100)
    t.equal(up.hits('/cold'), 1, 'one upstream request for the whole gateway')
    t.same([...new Set(bodies)], ['v1 /cold'], 'every waiter got the one response')
    const cold = (): Array<Record<string, unknown>> => gw.lines.filter(l => l.type === 'access' && l.path === '/cold')
    await gw.waitFor(() => cold().length >= 100)
    const served = new Set(cold().map(l => l.pid))
    t.equal(served.size, 2, 'and the requests were spread over both processes')
  })

  await t.test('item 2: the same right after a hard purge of the hot URL', async t => {
    const r = await gw.request('/_livery/purge', { method: 'POST', headers: auth, body: JSON.stringify({ urls: ['http://site.test/cold'] }) })
    t.equal(r.status, 200, r.body)
    const bodies = await burst(100)
    t.equal(up.hits('/cold'), 2, 'one more upstream request after the purge')
    t.same([...new Set(bodies)], ['v2 /cold'], 'every waiter got the new response')
  })

  await t.test('item 8: the memory budget is per process, and status shows the gateway total', async t => {
    const status = JSON.parse((await gw.request('/_livery/status')).body) as { cache: { memoryBudget: { perProcess: number, processes: number, total: number } } }
    t.same(status.cache.memoryBudget, { perProcess: 64 * 1024 * 1024, processes: 2, total: 128 * 1024 * 1024 })
  })

  await t.test('item 6: gauges combined by meaning; counters survive a dead worker; scrapes answer while it is gone', async t => {
    const scrape = async (): Promise<string> => {
      const r = await gw.request('/_livery/metrics')
      t.equal(r.status, 200, 'the scrape answered')
      return r.body
    }
    // Both processes tried the dead theme server at start and opened its circuit.
    await until(async () => metricValue(await scrape(), 'livery_fetch_circuit_open') > 0, 30_000, 'the circuit to open')
    t.equal(metricValue(await scrape(), 'livery_fetch_circuit_open', { origin: deadTheme.slice(0, -1) }), 1, 'livery_fetch_circuit_open is the largest over the processes, not their sum')
    const before = metricValue(await scrape(), 'livery_http_requests_total', { site: 'site' })
    t.ok(before > 50, `requests counted so far: ${before}`)
    const victim = gw.workers[0]
    process.kill(victim, 'SIGKILL')
    await gw.waitFor(l => l.workerPid === victim && typeof l.msg === 'string' && l.msg.startsWith('worker exited unexpectedly'))
    const during = metricValue(await scrape(), 'livery_http_requests_total', { site: 'site' })
    t.ok(during >= before, `with the worker gone the counter did not drop (${before} → ${during})`)
    const replacement = await gw.waitFor(l => l.msg === 'worker started' && l.workerPid !== victim && l.slot === 0)
    await gw.waitFor(l => l.msg === 'livery is listening' && l.pid === replacement.workerPid)
    const after = metricValue(await scrape(), 'livery_http_requests_total', { site: 'site' })
    t.ok(after >= during, `after the restart it still did not drop (${during} → ${after})`)
  })

  await gw.stop()
})

