/**
 * Issue 12 with Redis: two gateways (`livery serve`, two processes each)
 * share a test-owned redis-server, which the last test kills and restarts.
 *
 * - item 2: concurrent cold misses over both gateways make one upstream
 *   request in all (root cause: each process had its own waiting list and
 *   nothing coordinated the instances);
 * - items 3 and 4: hard purges of a hot page under load on both gateways,
 *   acknowledged: no request sent after the answer gets the purged copy
 *   (root causes: the tiers were purged in parallel, so a read of Redis could
 *   promote the old entry back; and the API answered before the other
 *   instances had applied the purge);
 * - item 5: a second request right after a MISS is a hit (root cause: a read
 *   of Redis raced the memory insert and the release of the waiting list);
 * - item 7: with Redis dead, readyz stays 200 and the state shows in
 *   /_livery/status, `livery_redis_up` and one log line each way.
 */
import t from 'tap'
import type { ServerResponse } from 'node:http'
import { join } from 'node:path'
import { startRedis } from '../helpers/redis.ts'
import { startCliGateway, type CliGateway, type CliReply } from '../helpers/cli-gateway.ts'
import { metricValue } from '../gateway-pool/fixture.ts'
import { cacheable, countingUpstream, fetchTimed, newAgent, startTierGateway, tempDir, tierConfig, until } from './helpers.ts'

const token = 'coherence-redis-token'
const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }

t.test('two gateways of two processes share Redis', async t => {
  const redis = await startRedis(t)
  const held: Array<() => void> = []
  const hold = (path: string) => (_req: unknown, res: ServerResponse, n: number) => { held.push(() => { res.writeHead(200, cacheable).end(`v${n} ${path}`) }) }
  // Held only while `holdRefill` is set: the refill after a purge.
  let holdRefill = false
  const up = await countingUpstream(t, {
    '/cold': hold('/cold'),
    '/stalled': hold('/stalled'),
    '/hot-once': (req, res: ServerResponse, n) => { if (holdRefill) hold('/hot-once')(req, res, n); else res.writeHead(200, cacheable).end(`v${n} /hot-once`) },
  })
  const dir = t.testdir({})
  const yaml = (name: string): string[] => [
    'listen: { host: 127.0.0.1, port: 0 }',
    'processes: 2',
    'shutdownTimeout: 1s',
    'log: { level: info, access: false }',
    `admin: { token: ${token} }`,
    // Lag shedding off, as for every in-process test gateway (withoutLagShedding in
    // test/helpers/servers.ts): a starved machine stalls a worker's loop past the
    // 1 s default during a burst, and a 503 of the burst is no answer about single-flight.
    'pool: { maxEventLoopDelay: 0s }',
    // A 50 ms deadline would let a busy 2-core machine skip write-throughs these tests rely on.
    `cache: { directory: ${JSON.stringify(join(dir, name))}, disk: { maxSize: 0 }, redis: { url: ${JSON.stringify(redis.url)}, prefix: "coh:", timeout: 1s }, lockTimeout: 2m }`,
    'sites:',
    // The waiting list must outlast however long a busy machine takes to get every request in.
    `  - { name: site, hosts: ["*"], upstream: ${JSON.stringify(up.url)}, timeouts: { firstByte: 2m } }`,
  ]
  const [a, b] = await Promise.all([startCliGateway(t, dir, 'a', yaml('a'), 2), startCliGateway(t, dir, 'b', yaml('b'), 2)])
  const both = [a, b]
  const redisState = async (g: CliGateway): Promise<string> => (JSON.parse((await g.request('/_livery/status')).body) as { redis: { state: string } }).redis.state
  const members = async (): Promise<number> => {
    const r = await a.request('/_livery/purge', { method: 'POST', headers: auth, body: JSON.stringify({ urls: ['http://site.test/nothing'] }) })
    return (JSON.parse(r.body) as { acknowledged: number }).acknowledged
  }
  // Every process announces itself on the bus once Redis answers; then a purge is acknowledged by the three others.
  await until(async () => await members() === 3, 20_000, 'all four processes to be members of the purge bus', 50)
  /** Replies of the current burst that came back, for the message of a wait that timed out. */
  let answered: string[] = []
  /** Sends `n` requests for `path` to each gateway; an early answer is noted in `answered`. */
  const burst = (path: string, n: number): Array<Promise<CliReply>> => {
    answered = []
    return both.flatMap(g => Array.from({ length: n }, () => g.request(path).then(r => {
      answered.push(`${g.port}: ${r.status} ${r.body.slice(0, 200)}`)
      return r
    })))
  }
  /**
   * Waits until `n` requests and the scrape itself are in flight in `g`. A
   * timeout names the last count seen, the replies that came back early and
   * the gateways' warnings (a shed or a failure shows there).
   */
  const allWaiting = async (g: CliGateway, n: number): Promise<void> => {
    let last = NaN
    try {
      await until(async () => { last = metricValue((await g.request('/_livery/metrics')).body, 'livery_http_requests_active'); return last >= n + 1 }, 90_000, 'every request to be waiting')
    } catch (err) {
      const warnings = both.flatMap(x => x.lines.filter(l => typeof l.level === 'number' && l.level >= 40).map(l => JSON.stringify(l).slice(0, 300)))
      throw new Error(`${(err as Error).message} (last scrape: ${last} requests active, ${n + 1} expected; answered early: ${JSON.stringify(answered)}; warnings: ${JSON.stringify(warnings)})`)
    }
  }

  await t.test('item 2: concurrent cold misses over both gateways make one upstream request in all', async t => {
    const n = 30
    const replies = burst('/cold', n)
    for (const g of both) {
      await allWaiting(g, n)
    }
    for (const release of held.splice(0)) release()
    const got = await Promise.all(replies)
    t.ok(got.every(r => r.status === 200), 'every request answered 200')
    t.equal(up.hits('/cold'), 1, 'one upstream request for both gateways')
    t.same([...new Set(got.map(r => r.body))], ['v1 /cold'], 'every waiter got the one response')
  })

  await t.test('item 2, Redis stalled during the burst: the lock waits it out, one upstream request in all', async t => {
    // Root cause: a leader whose read of Redis had timed out skipped the
    // cross-instance lock (the tier's last call had failed) and fetched: one
    // fetch per instance, 2 here, exactly when a burst makes Redis slow.
    const n = 10
    const redisErrors = async (g: CliGateway): Promise<number> => metricValue((await g.request('/_livery/metrics')).body, 'livery_cache_errors_total', { tier: 'redis' })
    const errorsBefore = await Promise.all(both.map(redisErrors))
    redis.pause()
    const replies = burst('/stalled', n)
    for (const [i, g] of both.entries()) {
      await allWaiting(g, n)
      // A read of Redis for the page timed out (1 s) in this gateway; the first
      // one to was its leader's, which is at the lock now. (The counter, not
      // the status: "stalled" shows only until the tier's breaker closes again.)
      await until(async () => await redisErrors(g) > errorsBefore[i], 20_000, 'a read of Redis to time out', 50)
    }
    redis.resume()
    for (const g of both) await until(async () => await redisState(g) === 'up', 20_000, 'status to show Redis up again', 50)
    await until(async () => up.hits('/stalled') >= 1, 20_000, 'the one fetch to start')
    for (const release of held.splice(0)) release()
    const got = await Promise.all(replies)
    t.ok(got.every(r => r.status === 200), 'every request answered 200')
    t.equal(up.hits('/stalled'), 1, 'one upstream request for both gateways')
    t.same([...new Set(got.map(r => r.body))], ['v1 /stalled'], 'every waiter got the one response')
    // Heartbeats stopped while Redis was: every member is back before purges are counted again.
    await until(async () => await members() === 3, 20_000, 'all four processes to be members of the purge bus again', 50)
  })

  await t.test('item 2, right after a hard purge of a hot page under load: one upstream request in all', async t => {
    // Root cause: the process that had written the page to Redis seconds
    // before took every purge of it for one its write-back had raced, and
    // purged again over every member, banning the refill under way: 2 or 3
    // fetches. It now asks Redis whether its write is still there.
    const path = '/hot-once'
    const version = (body: string): number => Number(/^v(\d+) /.exec(body)?.[1] ?? 0)
    // Written by gateway b, purged through gateway a.
    await b.request(path)
    for (const g of both) for (let i = 0; i < 2; i++) await g.request(path)
    let floor = Infinity
    const fresh = { a: 0, b: 0 }
    let stop = false
    const waiters = new Set<() => void>()
    const loop = async (g: CliGateway, name: 'a' | 'b'): Promise<void> => {
      while (!stop) {
        const r = await g.request(path)
        if (version(r.body) > floor) fresh[name]++
        for (const w of [...waiters]) w()
      }
    }
    const freshOnBoth = (k: number): Promise<void> => new Promise(resolve => {
      const check = (): void => { if (fresh.a >= k && fresh.b >= k) { waiters.delete(check); resolve() } }
      waiters.add(check)
      check()
    })
    const loops = [...Array.from({ length: 3 }, () => loop(a, 'a')), ...Array.from({ length: 3 }, () => loop(b, 'b'))]
    holdRefill = true
    const before = up.hits(path)
    const r = await a.request('/_livery/purge', { method: 'POST', headers: auth, body: JSON.stringify({ urls: [`http://site.test${path}`] }) })
    t.equal(r.status, 200, r.body)
    t.same(JSON.parse(r.body).missing, [], 'every process acknowledged')
    floor = before
    await until(async () => up.hits(path) > before, 20_000, 'the refill to reach the upstream')
    holdRefill = false
    for (const release of held.splice(0)) release()
    await freshOnBoth(10)
    stop = true
    await Promise.all(loops)
    t.equal(up.hits(path) - before, 1, 'one upstream request after the purge, for both gateways')
  })

  await t.test('items 3 and 4: acknowledged hard purges of a hot page under load stick everywhere', async t => {
    const path = '/hot'
    const version = (body: string): number => Number(/^v(\d+) /.exec(body)?.[1] ?? 0)
    interface Seen { readonly gw: string, readonly afterRound: number, readonly version: number }
    const seen: Seen[] = []
    let round = 0
    let stop = false
    const waiters = new Set<() => void>()
    const loop = async (g: CliGateway, name: string): Promise<void> => {
      while (!stop) {
        const afterRound = round
        const r = await g.request(path)
        seen.push({ gw: name, afterRound, version: version(r.body) })
        for (const w of [...waiters]) w()
      }
    }
    const more = (k: number, r: number): Promise<void> => new Promise(resolve => {
      const check = (): void => {
        for (const name of ['a', 'b']) if (seen.filter(s => s.gw === name && s.afterRound >= r).length < k) return
        waiters.delete(check)
        resolve()
      }
      waiters.add(check)
      check()
    })
    const loops = [...Array.from({ length: 3 }, () => loop(a, 'a')), ...Array.from({ length: 3 }, () => loop(b, 'b'))]
    const rounds = 4
    const floors: number[] = []
    for (let i = 1; i <= rounds; i++) {
      await more(10, round)
      const via = i % 2 === 0 ? b : a
      // Every upstream answer so far is a copy this purge removes.
      floors[i] = up.hits(path)
      const r = await via.request('/_livery/purge', { method: 'POST', headers: auth, body: JSON.stringify({ urls: [`http://site.test${path}`] }) })
      t.equal(r.status, 200, r.body)
      t.same(JSON.parse(r.body).missing, [], `round ${i}: every process acknowledged`)
      round = i
    }
    await more(10, round)
    stop = true
    await Promise.all(loops)
    const stale = seen.filter(s => s.afterRound > 0 && s.version <= floors[s.afterRound])
    t.same(stale, [], `no request sent after an answer got a purged copy (${seen.length} requests, ${up.hits(path)} upstream)`)
  })

  await t.test('item 5: a second request right after a MISS is a hit', async t => {
    // Each gateway's requests alternate between its two processes.
    for (let i = 0; i < 10; i++) {
      const p = `/second/${i}`
      const first = await a.request(p)
      t.equal(first.headers['x-cache'], 'MISS')
      const second = await a.request(p)
      t.equal(second.body, first.body, `${p}: the second request got the same page`)
      t.equal(up.hits(p), 1, `${p}: one upstream request`)
    }
  })

  await t.test('item 7: a dead Redis is a degraded state, not unreadiness; its return is seen', async t => {
    t.ok(a.lines.some(l => l.msg === 'Redis is up'), 'Redis up was logged at start')
    await redis.kill()
    for (const g of both) {
      await until(async () => await redisState(g) === 'down', 20_000, 'status to show Redis down', 50)
      t.equal((await g.request('/_livery/readyz')).status, 200, 'readyz stays 200')
      t.equal(metricValue((await g.request('/_livery/metrics')).body, 'livery_redis_up'), 0, 'livery_redis_up is 0')
      t.equal((await g.request('/during-outage')).status, 200, 'pages are served')
      await g.waitFor(l => typeof l.msg === 'string' && l.msg.startsWith('Redis is down'))
      t.pass('"Redis is down" was logged')
    }
    await redis.restart()
    for (const g of both) {
      await g.waitFor(l => typeof l.msg === 'string' && l.msg.startsWith('Redis is back'))
      t.pass('"Redis is back" was logged')
      await until(async () => metricValue((await g.request('/_livery/metrics')).body, 'livery_redis_up') === 1, 20_000, 'livery_redis_up back to 1 (the least over the processes)', 50)
    }
  })

  await Promise.all(both.map(g => g.stop()))
})

t.test('item 5, one process: a second request right after a MISS is a hit', async t => {
  const redis = await startRedis(t)
  const up = await countingUpstream(t)
  const gw = await startTierGateway(t, tierConfig(up.url, tempDir(t, 'second'), {
    cache: { disk: { maxSize: 0 }, redis: { url: redis.url, prefix: 'second:', timeout: '1s' } },
  }), tempDir(t, 'second-cfg'))
  const agent = newAgent(t)
  await until(async () => (JSON.parse((await fetchTimed(agent, gw.url, '/_livery/status', { headers: { host: 'tiers.test' } })).body) as { redis: { state: string } }).redis.state === 'up', 10_000, 'Redis to be up')
  const repeated: string[] = []
  for (let i = 0; i < 15; i++) {
    const p = `/again/${i}`
    const first = await fetchTimed(agent, gw.url, p, { headers: { host: 'tiers.test' } })
    t.equal(first.headers['x-cache'], 'MISS')
    await fetchTimed(agent, gw.url, p, { headers: { host: 'tiers.test' } })
    if (up.hits(p) !== 1) repeated.push(p)
  }
  t.same(repeated, [], 'no URL went upstream twice')
})
