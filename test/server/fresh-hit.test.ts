// Issue 15, item 3: the synchronous fresh-hit path (src/server/fresh-hit.ts)
// answers exactly as the general path does. Two gateways share one memory
// tier and one injected clock, one with the fast path and one without; the
// same raw requests must get the same bytes, the same access-log lines and the
// same metric counts. Every request the fast path does not take must reach
// the general path (status().cache.freshHits counts the fast path's answers).
import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { request } from 'undici'
import { parseConfig } from '../../src/config/load.ts'
import { Gateway } from '../../src/server/gateway.ts'
import { MemoryStore } from '../../src/cache/memory-store.ts'
import { LogCapture, type LogLine } from '../helpers/logs.ts'
import { rawRequest } from '../helpers/raw-http.ts'
import { gatewayRaw, listenHttp, type Teardown } from '../helpers/servers.ts'
import { until } from '../gateway-cache/fixture.ts'

/** The gateways' clock: fixed, so Age is the same on both; tests move it on. */
const clock = { now: Date.UTC(2026, 0, 1, 12, 0, 0) }
const httpDate = (ms: number): string => new Date(ms).toUTCString()
const token = 'fresh-hit-test-token'

interface Side {
  readonly gateway: Gateway
  readonly port: number
  readonly url: string
  readonly logs: LogCapture
}

interface Pair {
  readonly fast: Side
  readonly slow: Side
  /** Requests the upstream saw, by path. */
  readonly seen: Map<string, number>
}

function origin (req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0]
  const headers: Record<string, string> = {
    'content-type': 'text/html; charset=utf-8',
    date: httpDate(clock.now),
    'last-modified': httpDate(clock.now - 3_600_000),
    etag: `"${path}"`,
    'cache-control': 'max-age=60',
  }
  if (path === '/vary') headers.vary = 'Accept-Language'
  if (path === '/aged') headers.age = '17'
  if (path === '/grace') headers['cache-control'] = 'max-age=10, stale-while-revalidate=600'
  res.writeHead(200, headers)
  res.end(req.method === 'HEAD' ? undefined : `<html><body>page ${path} ${'x'.repeat(2000)}</body></html>`)
}

async function pair (t: Teardown & { testdir: (f?: Record<string, string>) => string }): Promise<Pair> {
  const seen = new Map<string, number>()
  const up = await listenHttp(t, createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    seen.set(path, (seen.get(path) ?? 0) + 1)
    origin(req, res)
  }))
  const dir = t.testdir({})
  const config = parseConfig(gatewayRaw({
    raw: {
      admin: { token },
      sites: [
        { name: 'www', hosts: ['www.test'], upstream: up.url, passCookies: ['sessionid'], warm: { afterPurge: true, hotHits: 2 } },
        { name: 'timed', hosts: ['timed.test'], upstream: up.url, serverTiming: true },
      ],
    },
  }, dir), {}, dir)
  const store = new MemoryStore({ maxSize: config.cache.memory.maxSize, maxEntrySize: config.cache.memory.maxEntrySize })
  const side = async (freshHits: boolean): Promise<Side> => {
    const logs = new LogCapture()
    const gateway = new Gateway(config, { logger: logs.logger, store, freshHits, now: () => clock.now })
    const address = await gateway.listen(0, '127.0.0.1')
    t.teardown(() => gateway.destroy())
    return { gateway, port: address.port, url: `http://127.0.0.1:${address.port}`, logs }
  }
  return { fast: await side(true), slow: await side(false), seen }
}

const freshHits = (s: Side): number => (s.gateway.status().cache as { freshHits: number }).freshHits

/** One request on its own connection; the whole response as the client got it. */
async function raw (s: Side, head: string): Promise<string> {
  return (await rawRequest(s.port, head, { untilResponse: true })).text
}

/** Sends `head` and returns the response with the access line it left, less the fields that measure time. */
async function exchange (s: Side, head: string, path: string): Promise<{ text: string, line: LogLine }> {
  const n = s.logs.find({ type: 'access', path }).length
  const text = await raw(s, head)
  // The line is written when the server sees the response close, just after the client has it.
  await until(() => s.logs.find({ type: 'access', path }).length > n, 5_000, `the access line for ${path}`)
  const { time, duration, cacheLookup, ...line } = s.logs.find({ type: 'access', path })[n]
  t.equal(typeof time, 'number')
  t.equal(typeof duration, 'number')
  t.equal(typeof cacheLookup, 'number', 'the cache lookup is timed on both paths')
  return { text, line }
}

/** The sample lines of the per-request metrics (and the hit counter), one string per series. */
async function requestMetrics (s: Side): Promise<Map<string, number>> {
  const text = await (await request(`${s.url}/_livery/metrics`)).body.text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    // Not the scrapes' own bytes (site "-"): the two texts differ in length.
    if (!/^livery_(http_requests_total|http_response_bytes_total|cache_hits_total|http_request_duration_seconds_count)\{/.test(line) || line.includes('site="-"')) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

function delta (before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const d: Record<string, number> = {}
  for (const [k, v] of after) if (v !== (before.get(k) ?? 0)) d[k] = v - (before.get(k) ?? 0)
  return d
}

const get = (path: string, host = 'www.test', extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`

t.test('the fast path answers fresh hits with the bytes, log lines and metrics of the general path', async t => {
  const { fast, slow, seen } = await pair(t)
  // One fill through the general path; both gateways read the same stored entry.
  for (const p of ['/page', '/page?q=1', '/aged']) t.match(await raw(slow, get(p)), /x-cache: MISS/i, `${p} filled`)
  const before = { fast: await requestMetrics(fast), slow: await requestMetrics(slow) }
  const cases: Array<readonly [string, string, string]> = [
    ['/page', get('/page'), 'GET'],
    ['/page', 'HEAD /page HTTP/1.1\r\nHost: www.test\r\nConnection: close\r\n\r\n', 'HEAD'],
    ['/page', get('/page?q=1', 'www.test', 'User-Agent: curl/8.5\r\nReferer: http://example.org/\r\n'), 'a query, User-Agent and Referer'],
    ['/page', get('/page', 'WWW.Test:80'), 'Host in another case, with the default port'],
    ['/page', get('/page', 'www.test', 'Cookie: theme=dark; lang=en\r\n'), 'a cookie that is not a session'],
    ['/page', get('/page', 'www.test', 'If-None-Match: "/page"\r\nConnection: close\r\n'), 'If-None-Match: 304'],
    ['/page', get('/page', 'www.test', 'If-None-Match: "other"\r\n'), 'If-None-Match that does not match: 200'],
    ['/page', get('/page', 'www.test', `If-Modified-Since: ${httpDate(clock.now)}\r\nConnection: close\r\n`), 'If-Modified-Since: 304'],
    ['/page', get('/page', 'www.test', 'Accept-Encoding: gzip\r\nConnection: close\r\n'), 'Connection: close'],
    ['/page', 'GET /page HTTP/1.0\r\nHost: www.test\r\n\r\n', 'HTTP/1.0'],
    ['/aged', get('/aged'), 'an upstream Age'],
  ]
  for (const [path, head, what] of cases) {
    const hitsBefore = freshHits(fast)
    const a = await exchange(fast, head, path)
    const b = await exchange(slow, head, path)
    t.equal(freshHits(fast), hitsBefore + 1, `${what}: the fast path answered`)
    t.equal(a.text, b.text, `${what}: the same bytes`)
    t.match(a.text, /\r\nx-cache: HIT\r\n/i, `${what}: a HIT`)
    t.same(a.line, b.line, `${what}: the same access line`)
  }
  t.equal(freshHits(slow), 0, 'the gateway without it never takes the fast path')
  const now = await raw(fast, get('/page'))
  t.equal(now, await raw(slow, get('/page')))
  t.match(now, /\r\nage: 0\r\n/, 'Age from the injected clock')
  clock.now += 5_000
  const aged = await raw(fast, get('/page'))
  t.equal(aged, await raw(slow, get('/page')), 'the same Age as the clock moves')
  t.match(aged, /\r\nage: 5\r\n/)
  const counted = delta(before.fast, await requestMetrics(fast))
  t.same(counted, delta(before.slow, await requestMetrics(slow)), 'the same request metrics and hit counts')
  // livery:cache:hit is process-wide: each gateway's counter counts both gateways' hits, so each path published every one.
  t.equal(counted['livery_cache_hits_total{tier="memory"}'], 2 * (cases.length + 2), 'every hit published once on either path')
  t.same([...seen.entries()], [['/page', 2], ['/aged', 1]], 'no hit went upstream')
})

t.test('a hot page counted on the fast path is warmed after a purge', async t => {
  const { fast } = await pair(t)
  await raw(fast, get('/page'))
  await raw(fast, get('/page'))
  await raw(fast, get('/page'))
  t.equal(freshHits(fast), 2)
  const purge = await request(`${fast.url}/_livery/purge`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ site: 'www' }) })
  t.equal(purge.statusCode, 200, await purge.body.text())
  t.match(await fast.logs.waitFor({ msg: 'purge: warm jobs enqueued' }), { urls: 1 }, 'the two fast-path hits made the page hot')
})

t.test('everything else falls through to the general path', async t => {
  const { fast, slow } = await pair(t)
  for (const h of ['www.test', 'timed.test']) {
    for (const p of ['/page', '/vary', '/grace']) t.match(await raw(slow, get(p, h)), /x-cache: MISS/i, `${h}${p} filled`)
  }
  const falls: Array<readonly [string, string, RegExp]> = [
    ['OPTIONS', `OPTIONS /page HTTP/1.1\r\nHost: www.test\r\n\r\n`, /x-cache: BYPASS/i],
    ['Cache-Control: max-stale', get('/page', 'www.test', 'Cache-Control: max-stale=5\r\n'), /x-cache: HIT/i],
    ['Pragma: no-cache', get('/page', 'www.test', 'Pragma: no-cache\r\n'), /x-cache: (REVALIDATED|MISS)/i],
    ['Authorization', get('/page', 'www.test', 'Authorization: Basic dTpw\r\n'), /x-cache: BYPASS/i],
    ['Range', get('/page', 'www.test', 'Range: bytes=0-5\r\n'), /^HTTP\/1\.1 206 [^]*content-range: bytes 0-5\//i],
    ['a session cookie', get('/page', 'www.test', 'Cookie: lang=en; sessionid=abc\r\n'), /x-cache: BYPASS/i],
    ['the admin token', get('/page', 'www.test', `X-Livery-Token: ${token}\r\n`), /server-timing: [^]*x-cache: HIT/i],
    ['a site with serverTiming', get('/page', 'timed.test'), /server-timing: [^]*x-cache: HIT/i],
    ['an absolute-form target', 'GET http://www.test/page HTTP/1.1\r\nHost: www.test\r\n\r\n', /x-cache: HIT/i],
    ['a Vary marker', get('/vary'), /x-cache: HIT/i],
    ['an admin route', get('/_livery/healthz'), /^HTTP\/1\.1 200/],
    ['no site', get('/page', 'nowhere.test'), /^HTTP\/1\.1 404/],
    ['a bad Host', get('/page', 'a b'), /^HTTP\/1\.1 400/],
    // Last: it invalidates /page.
    ['POST', `POST /page HTTP/1.1\r\nHost: www.test\r\nContent-Length: 0\r\n\r\n`, /x-cache: BYPASS/i],
  ]
  for (const [what, head, expect] of falls) {
    const before = freshHits(fast)
    t.match(await raw(fast, head), expect, `${what}: answered`)
    t.equal(freshHits(fast), before, `${what}: by the general path`)
  }
  clock.now += 11_000
  const before = freshHits(fast)
  t.match(await raw(fast, get('/grace')), /x-cache: UPDATING/i, 'a stale entry: served stale by the general path')
  t.equal(freshHits(fast), before, 'stale: by the general path')
})

t.test('a trusted proxy gets Server-Timing: the general path answers', async t => {
  const up = await listenHttp(t, createServer(origin))
  const dir = t.testdir({})
  const config = parseConfig(gatewayRaw({ upstream: up.url, raw: { trustedProxies: ['127.0.0.1'] } }, dir), {}, dir)
  const gateway = new Gateway(config, { logger: new LogCapture().logger, now: () => clock.now })
  const { port } = await gateway.listen(0, '127.0.0.1')
  t.teardown(() => gateway.destroy())
  const side: Side = { gateway, port, url: `http://127.0.0.1:${port}`, logs: new LogCapture() }
  t.match(await raw(side, get('/page')), /x-cache: MISS/i)
  t.match(await raw(side, get('/page')), /x-cache: HIT/i, 'no forwarding header: the client is not a proxy')
  t.equal(freshHits(side), 1)
  t.match(await raw(side, get('/page', 'www.test', 'X-Forwarded-For: 192.0.2.7\r\n')), /server-timing: [^]*x-cache: HIT/i)
  t.equal(freshHits(side), 1, 'through a trusted proxy: the general path')
})

t.test('while the watchdog sheds, hits go to the general path, which sheds them', async t => {
  const up = await listenHttp(t, createServer(origin))
  const dir = t.testdir({})
  const rawConfig = (extra: Record<string, unknown>): Record<string, unknown> => gatewayRaw({ raw: { sites: [{ name: 'www', hosts: ['www.test'], upstream: up.url }], ...extra } }, dir)
  const store = new MemoryStore({ maxSize: 64 * 1024 * 1024, maxEntrySize: 8 * 1024 * 1024 })
  const open = async (config: ReturnType<typeof parseConfig>): Promise<Side> => {
    const gateway = new Gateway(config, { logger: new LogCapture().logger, store, now: () => clock.now })
    const { port } = await gateway.listen(0, '127.0.0.1')
    t.teardown(() => gateway.destroy())
    return { gateway, port, url: `http://127.0.0.1:${port}`, logs: new LogCapture() }
  }
  const healthy = await open(parseConfig(rawConfig({}), {}, dir))
  t.match(await raw(healthy, get('/page')), /x-cache: MISS/i, 'filled through a healthy gateway')
  // Any heap is over 1 KB: the second gateway's watchdog sheds from its first sample on.
  const shedding = await open(parseConfig(rawConfig({ pool: { maxHeap: '1KB' } }), {}, dir))
  await until(() => shedding.gateway.watchdog.overloaded() !== undefined, 10_000, 'the watchdog to shed')
  t.match(await raw(shedding, get('/page')), /^HTTP\/1\.1 503 [^]*x-livery-error: LIVERY_ERR_OVERLOADED/i, 'shed, as before the fast path')
  t.equal(freshHits(shedding), 0, 'by the general path')
  t.match(await raw(healthy, get('/page')), /x-cache: HIT/i, 'the same entry is a hit where nothing sheds')
  t.equal(freshHits(healthy), 1)
})

