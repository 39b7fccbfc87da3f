/**
 * The real Gateway with a themed site, between a content upstream and a theme
 * server that the test controls (healthy, hung, failing, resetting, changed),
 * for the fetch pool's acceptance tests (issue 4). Durations are short (ttl
 * 1 s, minTtl 500 ms) so a copy goes stale within a test.
 *
 * Time-based conditions (a copy going stale, a backoff running out) are
 * waited for by polling the clock the gateway itself uses, never by a fixed
 * sleep; wall-clock bounds add the measured lateness of a plain timer, as the
 * fetch pool's own tests do, so they check the gateway, not the machine.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Agent, request } from 'undici'
import { parseConfig } from '../../src/config/load.ts'
import type { Config } from '../../src/config/types.ts'
import { Gateway } from '../../src/server/gateway.ts'
import { coarseNow } from '../../src/clock.ts'
import { LogCapture } from '../helpers/logs.ts'
import { startUpstream, withoutLagShedding, type Teardown, type Upstream } from '../helpers/servers.ts'
import { startServer, tempDir, type TestServer } from '../fetcher/helpers.ts'

export { tempDir, timerLateness } from '../fetcher/helpers.ts'

/** A theme page whose banner names its version, so a response shows which theme it was built with. */
export function themePage (version: string): string {
  return `<!DOCTYPE html><html><head><title>Theme</title></head><body><header id="banner">THEME-${version}</header>` +
    '<main id="content">theme placeholder</main><aside id="side">side placeholder</aside></body></html>'
}

/** The theme version a themed response was built with, or undefined for an unthemed one. */
export function themeOf (body: string): string | undefined {
  return /THEME-([\w.-]+)/.exec(body)?.[1]
}

export type ThemeMode = 'ok' | 'hang' | '500' | 'reset'

export interface ThemeServer extends TestServer {
  /** The page served at `/theme.html` while healthy. */
  version: string
  mode: ThemeMode
  /** Requests answered since the last `set()`. */
  readonly seen: () => number
  set (mode: ThemeMode, version?: string): void
}

/**
 * Any `…/theme.html` serves `themePage(version)` without caching headers (so
 * `fetch.ttl` applies); other paths 404. `hang` accepts and never answers,
 * `500` answers 500, `reset` destroys the connection.
 */
export async function startThemeServer (t: Teardown, mode: ThemeMode = 'ok', version = 'v1'): Promise<ThemeServer> {
  let mark = 0
  const state = await startServer(t, (req, res) => { answer(state as ThemeServer, req, res) }) as ThemeServer
  state.mode = mode
  state.version = version
  ;(state as { seen: () => number }).seen = () => state.requests.length - mark
  state.set = (m, v) => {
    state.mode = m
    if (v !== undefined) state.version = v
    mark = state.requests.length
  }
  return state
}

function answer (s: ThemeServer, req: IncomingMessage, res: ServerResponse): void {
  switch (s.mode) {
    case 'hang': return
    case 'reset': req.socket.destroy(); return
    case '500': res.writeHead(500, { 'content-type': 'text/plain' }).end('theme server broken'); return
    case 'ok':
      if (req.url?.endsWith('/theme.html') === true) res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(themePage(s.version))
      else res.writeHead(404, { 'content-type': 'text/plain' }).end('no such theme file')
  }
}

/** A content upstream: every path is a small HTML page with `#content`, sent with `cacheControl` (or its value for the path). */
export async function startContent (t: Teardown, cacheControl: string | ((path: string) => string) = 'no-store'): Promise<Upstream & { hits: () => number }> {
  let hits = 0
  const up = await startUpstream(t, (req, res) => {
    hits++
    res.sendDate = false
    const cc = typeof cacheControl === 'string' ? cacheControl : cacheControl(req.url ?? '/')
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': cc })
    res.end(`<!DOCTYPE html><html><head><title>Page</title></head><body><div id="content">PAGE ${req.url ?? '/'}</div><div id="news">news item</div></body></html>`)
  })
  return { ...up, hits: () => hits }
}

/** Writes a rules file (`<theme href="theme.html"/>` plus `extra` rules) into `dir`. */
export function writeRules (dir: string, extra = '', name = 'rules.xml'): string {
  const file = join(dir, name)
  writeFileSync(file, `<rules xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css">
  <theme href="theme.html"/>
  <replace css:theme="#content" css:content="#content"/>
  ${extra}
</rules>
`)
  return file
}

/**
 * Short durations: ttl 1 s, minTtl 500 ms, wait 150 ms. missWait is a safety
 * net of 30 s: on a busy machine the cold theme fetch at start-up outlasted
 * 1 s and the first page came back unthemed (issue 10); tests of missWait set it.
 */
export const fetchDefaults = {
  concurrency: 2,
  ttl: '1s',
  minTtl: '500ms',
  wait: '150ms',
  missWait: '30s',
  staleWhileRevalidate: '1h',
  staleIfError: '1h',
  timeouts: { connect: '1s', firstByte: '5s', betweenBytes: '5s', total: '5s' },
  circuit: { failures: 3, coolDown: '1s', maxCoolDown: '4s' },
}

export interface SiteSpec {
  readonly name: string
  readonly hosts?: string[]
  readonly upstream: string
  readonly rules: string
  /** Base URL of the theme href, e.g. the theme server's origin + `/`. */
  readonly base: string
  /** Extra site keys (pool, ...). */
  readonly extra?: Record<string, unknown>
}

export function themedConfig (dir: string, sites: readonly SiteSpec[], fetch: Record<string, unknown> = {}, top: Record<string, unknown> = {}): Config {
  return parseConfig({
    ...top,
    pool: withoutLagShedding(top.pool),
    listen: { host: '127.0.0.1', port: 0 },
    log: { level: 'debug' },
    threads: 1,
    cache: { directory: dir },
    fetch: { ...fetchDefaults, ...fetch },
    sites: sites.map(s => ({
      name: s.name,
      hosts: s.hosts ?? ['*'],
      upstream: s.upstream,
      grace: '0s',
      theme: { rules: s.rules, base: s.base },
      ...s.extra,
    })),
  }, {}, dir)
}

export interface Reply {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
  /** Wall-clock time from sending the request to the end of the body. */
  readonly ms: number
  /** performance.now() when the request was sent. */
  readonly sentAt: number
  /** Date.now() when the request was sent. */
  readonly sentAtEpoch: number
}

export interface ThemedGateway {
  readonly gateway: Gateway
  readonly url: string
  readonly logs: LogCapture
  get (path: string, host?: string): Promise<Reply>
  /** Graceful close (the fetch pool flushes its copies to disk); teardown is then a no-op. */
  close (): Promise<void>
}

/** Starts a Gateway (memory cache; the fetch pool persists under `<dir>/fetch`) and an agent, destroyed at teardown. */
export async function startGateway (t: Teardown, config: Config): Promise<ThemedGateway> {
  const logs = new LogCapture()
  const gateway = new Gateway(config, { logger: logs.logger })
  const agent = new Agent({ keepAliveTimeout: 2_000, connections: 600 })
  let closed = false
  t.teardown(async () => {
    await agent.destroy()
    if (!closed) await gateway.destroy()
  })
  const address = await gateway.listen(0, '127.0.0.1')
  const url = `http://127.0.0.1:${address.port}`
  return {
    gateway,
    url,
    logs,
    async get (path, host = 'site.test') {
      const sentAtEpoch = Date.now()
      const sentAt = performance.now()
      const r = await request(url + path, { headers: { host }, dispatcher: agent })
      const body = await r.body.text()
      return { status: r.statusCode, headers: r.headers, body, ms: performance.now() - sentAt, sentAt, sentAtEpoch }
    },
    async close () {
      closed = true
      await gateway.close()
    },
  }
}

/** Polls `cond` every 20 ms until it holds; fails after `ms`. */
export async function until (cond: () => boolean, ms = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise<void>(resolve => { setTimeout(resolve, 20).unref() })
  }
}

/**
 * Resolves once the fetch pool's copy of `url` is stale both by the pool's
 * clock (Date.now) and by the coarse clock the themer checks per request.
 */
export async function untilStale (gw: Gateway, url: string): Promise<void> {
  const copy = gw.fetchPool.peek(url)
  if (copy === undefined) throw new Error(`no copy of ${url}`)
  await until(() => Date.now() > copy.freshUntil && coarseNow() > copy.freshUntil, 20_000, `${url} to go stale`)
}

export function metric (text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find(l => l.startsWith(`${name}${labels === '' ? '' : `{${labels}}`} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

/**
 * Watches this process's event loop (client, upstreams and gateway share it)
 * from now until `stop()`, which returns the longest stall in ms: the longest
 * gap between two ticks of a 10 ms timer, less those 10 ms. A response that
 * was ready in time can be delivered late by at most that much.
 */
export function watchStalls (): { stop: () => number } {
  const resolution = 10
  const h = monitorEventLoopDelay({ resolution })
  h.enable()
  return {
    stop: () => {
      h.disable()
      return Math.max(0, h.max / 1e6 - resolution)
    },
  }
}
