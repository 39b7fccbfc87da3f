/**
 * Test fixtures for the cache: config slices, entries, loopback servers and
 * `cacheHandler`, a minimal gateway that puts HttpCache on a real request
 * path (it is also the reference for how the server wires the cache in).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent, request } from 'undici'
import type { CacheConfig, SiteConfig } from '../../src/config/types.ts'
import { CacheEntry, type EntryMeta } from '../../src/cache/entry.ts'
import type { HttpCache, CacheRequest } from '../../src/cache/http-cache.ts'
import type { Fill } from '../../src/cache/fill.ts'

export interface Teardown { teardown: (fn: () => unknown) => void }

export function site (over: Partial<SiteConfig> = {}): SiteConfig {
  return {
    name: 'demo',
    hosts: ['demo.test'],
    pathPrefix: '/',
    upstream: 'http://127.0.0.1:1',
    preserveHost: false,
    serverTiming: false,
    connections: 10,
    timeouts: { connect: 1000, firstByte: 5000, betweenBytes: 5000 },
    pool: { maxConcurrent: 10, maxQueue: 10, queueTimeout: 1000, requestTimeout: 5000, killAfter: 5000 },
    grace: 0,
    staleIfError: 0,
    keep: 0,
    defaultTtl: 0,
    stripSetCookie: false,
    passCookies: [],
    targetedField: 'Livery-Cache-Control',
    ...over
  }
}

export function cacheConfig (over: Partial<CacheConfig> = {}): CacheConfig {
  return {
    directory: '/tmp/livery-cache-test',
    memory: { maxSize: 64 * 1024 * 1024, maxEntrySize: 8 * 1024 * 1024 },
    disk: { maxSize: 0 },
    lockTimeout: 5000,
    hitForMiss: 120_000,
    ...over
  }
}

export function makeEntry (url: string, body: Buffer | string, over: Partial<EntryMeta> = {}, status = 200): CacheEntry {
  const b = typeof body === 'string' ? Buffer.from(body) : body
  const now = Date.now()
  return new CacheEntry(status, ['content-type', 'text/plain', 'etag', '"x"', 'content-length', String(b.length)], b, {
    url,
    site: 'demo',
    requestTime: now,
    responseTime: now,
    initialAge: 0,
    freshUntil: now + 60_000,
    staleUntil: now + 60_000,
    errorUntil: now + 60_000,
    holdUntil: now + 60_000,
    flags: 0,
    etag: '"x"',
    lastModified: '',
    vary: [],
    varyValues: [],
    tags: [],
    ...over
  })
}

export async function listen (t: Teardown, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server, origin: string, port: number }> {
  const server = createServer(handler)
  server.keepAliveTimeout = 1000
  // Node's default backlog (511) drops SYNs from a burst of 1,000 connects; on a
  // busy machine their retransmits ran into the client's connect timeout.
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const port = (server.address() as AddressInfo).port
  return { server, origin: `http://127.0.0.1:${port}`, port }
}

const hop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'host'])

function forwardable (h: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !hop.has(k)) out[k] = v
  return out
}

/** A tiny gateway: lookup → serve | fill through undici → store. */
export type Handler = ((req: IncomingMessage, res: ServerResponse) => void) & { settled: () => Promise<void> }

export function cacheHandler (cache: HttpCache, s: SiteConfig, upstream: string, agent: Agent, keyExtra = ''): Handler {
  const background = new Set<Promise<void>>()
  async function runFill (fill: Fill, creq: CacheRequest, req: IncomingMessage, res: ServerResponse | undefined): Promise<void> {
    let up
    try {
      up = await request(upstream + creq.url, { method: fill.upstreamMethod, headers: fill.upstreamHeaders(forwardable(req.headers)), dispatcher: agent })
    } catch (err) {
      const stale = fill.fail(err)
      if (res === undefined) return
      if (stale !== undefined) cache.serve(stale, req, res, 'STALE')
      else res.writeHead(502).end()
      return
    }
    const d = fill.response(up.statusCode, up.headers)
    if (d.action === 'serve') {
      await up.body.dump()
      if (res !== undefined) cache.serve(d.entry, req, res, d.xcache)
      return
    }
    res?.writeHead(up.statusCode, { ...forwardable(up.headers), 'x-cache': 'MISS' })
    const chunks: Buffer[] = []
    let size = 0
    let ok = true
    try {
      for await (const c of up.body) {
        const b = c as Buffer
        res?.write(b)
        if (d.action === 'store' && ok) {
          size += b.length
          if (size > d.maxBytes) ok = false
          else chunks.push(b)
        }
      }
    } catch {
      ok = false
    }
    res?.end()
    if (d.action === 'store') await fill.finish(chunks, ok)
  }

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const creq: CacheRequest = { method: req.method ?? 'GET', url: req.url ?? '/', host: req.headers.host ?? '', headers: req.headers }
    let r = cache.lookup(creq, s, keyExtra)
    if (r instanceof Promise) r = await r
    switch (r.kind) {
      case 'hit':
        cache.serve(r.entry, req, res, r.xcache)
        return
      case 'stale':
        cache.serve(r.entry, req, res, r.xcache)
        if (r.refresh !== undefined) {
          const p = runFill(r.refresh, creq, req, undefined)
          background.add(p)
          await p
          background.delete(p)
        }
        return
      case 'only-if-cached':
        res.writeHead(504).end()
        return
      case 'miss':
        await runFill(r.fill, creq, req, res)
        return
      case 'pass': {
        const up = await request(upstream + creq.url, { method: creq.method, headers: forwardable(req.headers), body: req, dispatcher: agent })
        if (r.invalidate) await cache.invalidate(creq, up.statusCode, up.headers)
        res.writeHead(up.statusCode, { ...forwardable(up.headers), 'x-cache': 'BYPASS' })
        for await (const c of up.body) res.write(c)
        res.end()
      }
    }
  }
  const h = (req: IncomingMessage, res: ServerResponse): void => { handle(req, res).catch((err: unknown) => { res.destroy(err as Error) }) }
  return Object.assign(h, { settled: async () => { await Promise.all([...background]) } })
}

export function agent (t: Teardown): Agent {
  const a = new Agent({ connections: 2000, keepAliveTimeout: 1000 })
  t.teardown(() => a.close())
  return a
}
