/**
 * The real Gateway in front of a real node:http upstream, for the cache's
 * acceptance tests. The gateway gets a MemoryStore the test holds, so a test
 * can wait for an entry to go stale by reading its deadline and polling the
 * gateway's own coarse clock (the Gateway has no clock injection; waiting on
 * that condition replaces fixed sleeps).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { parseConfig } from '../../src/config/load.ts'
import { Gateway } from '../../src/server/gateway.ts'
import { MemoryStore } from '../../src/cache/memory-store.ts'
import type { CacheEntry } from '../../src/cache/entry.ts'
import { cacheKey, normaliseHost } from '../../src/cache/key.ts'
import { coarseNow } from '../../src/clock.ts'
import { LogCapture, type LogLine } from '../helpers/logs.ts'
import { listenHttp, withoutLagShedding, type Teardown } from '../helpers/servers.ts'

/** A route answers the n-th request for its path (n counts from 1). */
export type Route = (req: IncomingMessage, res: ServerResponse, n: number) => void

export interface Reply {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
}

export interface CacheFixture {
  readonly gateway: Gateway
  readonly store: MemoryStore
  readonly url: string
  readonly agent: Agent
  readonly logs: LogCapture
  /** Host header every request carries; entries are keyed on it (`cacheKey`). */
  readonly host: string
  get (path: string, headers?: Record<string, string>, method?: string): Promise<Reply>
  /** Requests the upstream received for `path` (query ignored). */
  hits (path: string): number
  /** The stored entry for a path (primary key, no Vary, no theme version). */
  entry (path: string): CacheEntry | undefined
  /** Resolves once the gateway's clock says the entry for `path` is no longer fresh. */
  untilStale (path: string): Promise<void>
  /** Closes the upstream and its connections: later fills get connection refused. */
  closeUpstream (): Promise<void>
  /** Access-log lines for `path`, once at least `n` were written. */
  accessLines (path: string, n: number): Promise<LogLine[]>
}

export interface FixtureOptions {
  /** Extra keys of the one site (grace, keep, defaultTtl, pool, ...). */
  readonly site?: Record<string, unknown>
  /** Extra top-level config keys (cache, pool, fetch, ...). */
  readonly raw?: Record<string, unknown>
  /** Leave the upstream's automatic Date header on (off by default so freshness is exact). */
  readonly sendDate?: boolean
}

export const host = 'cache.test'

/** Polls `cond` every 20 ms until it holds; fails after `ms`. */
export async function until (cond: () => boolean, ms = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise<void>(resolve => { setTimeout(resolve, 20).unref() })
  }
}

export async function cacheFixture (t: Teardown, routes: Record<string, Route>, opts: FixtureOptions = {}): Promise<CacheFixture> {
  const counts = new Map<string, number>()
  const up = await listenBacklog(t, createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const n = (counts.get(path) ?? 0) + 1
    counts.set(path, n)
    // Without Date the gateway dates the response itself: no up-to-1 s apparent age from Date's whole seconds.
    res.sendDate = opts.sendDate === true
    const route = routes[path]
    if (route === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no route')
      return
    }
    route(req, res, n)
  }))
  const dir = mkdtempSync(join(tmpdir(), 'livery-gwcache-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const raw = opts.raw ?? {}
  const config = parseConfig({
    listen: { host: '127.0.0.1', port: 0 },
    log: { level: 'debug' },
    ...raw,
    cache: { directory: dir, ...(raw.cache as Record<string, unknown> | undefined) },
    pool: withoutLagShedding(raw.pool),
    sites: [{ name: 'cached', hosts: ['*'], upstream: up.url, ...opts.site }],
  }, {}, dir)
  const logs = new LogCapture()
  const store = new MemoryStore({ maxSize: config.cache.memory.maxSize, maxEntrySize: config.cache.memory.maxEntrySize })
  const gateway = new Gateway(config, { logger: logs.logger, store })
  // Gateway.listen() uses Node's default backlog (511): a burst of 1,000
  // connects would lose SYNs and wait out 1 s retransmits. Same listener otherwise.
  await gateway.ready()
  await new Promise<void>((resolve, reject) => {
    gateway.server.once('error', reject)
    gateway.server.listen({ port: 0, host: '127.0.0.1', backlog }, () => { gateway.server.off('error', reject); resolve() })
  })
  const address = gateway.server.address() as AddressInfo
  const agent = new Agent({ keepAliveTimeout: 1_000, connections: 64 })
  t.teardown(async () => {
    await agent.destroy()
    await gateway.destroy()
  })
  const url = `http://127.0.0.1:${address.port}`
  const entry = (path: string): CacheEntry | undefined => store.getSync(cacheKey({ site: 'cached', scheme: 'http', host: normaliseHost(host, 'http'), target: path, extra: '' }))
  return {
    gateway,
    store,
    url,
    agent,
    logs,
    host,
    hits: p => counts.get(p) ?? 0,
    closeUpstream: () => up.close(),
    entry,
    async get (path, headers = {}, method = 'GET') {
      const r = await request(url + path, { method: method as 'GET', headers: { host, ...headers }, dispatcher: agent })
      return { status: r.statusCode, headers: r.headers, body: await r.body.text() }
    },
    async untilStale (path) {
      // The entry is committed just after the client has the body: wait for it too.
      await until(() => entry(path) !== undefined, 5_000, `${path} to be stored`)
      const e = entry(path)!
      await until(() => coarseNow() >= e.meta.freshUntil, 5_000, `${path} to go stale`)
    },
    async accessLines (path, n) {
      const bare = path.split('?')[0]
      await until(() => logs.find({ type: 'access', path: bare }).length >= n, 5_000, `${n} access-log lines for ${path}`)
      return logs.find({ type: 'access', path: bare })
    },
  }
}

export const text = { 'content-type': 'text/plain' }

const backlog = 2048

/** test/helpers' listenHttp with a backlog that takes a 1,000-connection burst. */
function listenBacklog (t: Teardown, server: Server): Promise<{ url: string, close: () => Promise<void> }> {
  return listenHttp(t, server, backlog)
}
