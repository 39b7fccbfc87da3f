/**
 * One Gateway with a MemoryStore the test holds, in front of a cacheable
 * upstream whose answers say which request produced them. Tests wait for an
 * entry to be committed by reading the store, never by sleeping.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { parseConfig } from '../../src/config/load.ts'
import type { Config } from '../../src/config/types.ts'
import { Gateway } from '../../src/server/gateway.ts'
import { MemoryStore } from '../../src/cache/memory-store.ts'
import { cacheKey, normaliseHost } from '../../src/cache/key.ts'
import { LogCapture } from '../helpers/logs.ts'
import { gatewayRaw, startUpstream, type Teardown } from '../helpers/servers.ts'
import { until } from '../gateway-cache/fixture.ts'

export interface Seen {
  readonly n: number
  readonly host: string
  readonly url: string
  readonly headers: IncomingMessage['headers']
}

export interface Reply {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
  /** The upstream's account of the request that made this answer (undefined for gateway answers). */
  readonly seen: Seen | undefined
}

export interface SafetyFixture {
  readonly gateway: Gateway
  readonly config: Config
  readonly store: MemoryStore
  readonly port: number
  readonly url: string
  readonly agent: Agent
  readonly logs: LogCapture
  /** Every request the upstream received, in order. */
  readonly received: Seen[]
  get (host: string, path: string, headers?: Record<string, string>): Promise<Reply>
  /** Resolves once `path` of `host` is committed to the memory store for `site`. */
  untilStored (site: string, host: string, path: string, scheme?: string): Promise<void>
}

/** Cache-Control per path prefix; anything else is `public, max-age=600`. */
export const cacheControlFor = (url: string): string | undefined => {
  if (url.startsWith('/auth-plain')) return 'max-age=600'
  if (url.startsWith('/auth-public')) return 'public, max-age=600'
  if (url.startsWith('/auth-smaxage')) return 's-maxage=600'
  if (url.startsWith('/auth-mr')) return 'max-age=600, must-revalidate'
  return 'public, max-age=600'
}

export async function startSafetyGateway (t: Teardown, raw: Record<string, unknown>, upstreamHandler?: (req: IncomingMessage, res: ServerResponse, seen: Seen) => void): Promise<SafetyFixture> {
  const received: Seen[] = []
  const up = await startUpstream(t, (req, res) => {
    const seen: Seen = { n: received.length + 1, host: req.headers.host ?? '', url: req.url ?? '', headers: req.headers }
    received.push(seen)
    if (upstreamHandler !== undefined) { upstreamHandler(req, res, seen); return }
    const body = JSON.stringify(seen)
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    const cc = cacheControlFor(seen.url)
    if (cc !== undefined) headers['cache-control'] = cc
    if (seen.url.startsWith('/vary-cookie')) headers.vary = 'Cookie'
    res.writeHead(200, headers)
    res.end(body)
  })
  const dir = mkdtempSync(join(tmpdir(), 'livery-safety-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sites = (raw.sites as Record<string, unknown>[] | undefined)?.map(s => ({ upstream: up.url, ...s }))
  const config = parseConfig(gatewayRaw({ upstream: up.url, raw: sites === undefined ? raw : { ...raw, sites } }, dir), {}, dir)
  const logs = new LogCapture()
  const store = new MemoryStore({ maxSize: config.cache.memory.maxSize, maxEntrySize: config.cache.memory.maxEntrySize })
  const gateway = new Gateway(config, { logger: logs.logger, store })
  const address = await gateway.listen(0, '127.0.0.1')
  const agent = new Agent({ keepAliveTimeout: 1_000 })
  t.teardown(async () => {
    await agent.destroy()
    await gateway.destroy()
  })
  const url = `http://127.0.0.1:${address.port}`
  return {
    gateway, config, store, port: address.port, url, agent, logs, received,
    async get (host, path, headers = {}) {
      const r = await request(url + path, { headers: { host, ...headers }, dispatcher: agent })
      const body = await r.body.text()
      let seen: Seen | undefined
      try { seen = JSON.parse(body) as Seen } catch { seen = undefined }
      return { status: r.statusCode, headers: r.headers, body, seen }
    },
    async untilStored (site, host, path, scheme = 'http') {
      const key = cacheKey({ site, scheme, host: normaliseHost(host, scheme), target: path, extra: '' })
      await until(() => store.getSync(key) !== undefined, 10_000, `${path} to be stored`)
    },
  }
}
