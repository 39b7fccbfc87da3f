/** A real upstream + a real gateway (cacheHandler) + a fake clock, for policy tests by RFC section. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { request } from 'undici'
import type { Test } from 'tap'
import { HttpCache } from '../../src/cache/http-cache.ts'
import { MemoryStore } from '../../src/cache/memory-store.ts'
import type { CacheConfig, SiteConfig } from '../../src/config/types.ts'
import { agent, cacheConfig, cacheHandler, listen, site } from './helpers.ts'

export type Route = (req: IncomingMessage, res: ServerResponse, n: number) => void

export interface Fixture {
  cache: HttpCache
  /** Fake clock in ms; tests move it. */
  clock: { now: number }
  get: (path: string, headers?: Record<string, string>, method?: string) => Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }>
  hits: (path: string) => number
  /** Resolves when background refreshes started so far have finished. */
  settled: () => Promise<void>
}

export async function fixture (t: Test, routes: Record<string, Route>, siteOver: Partial<SiteConfig> = {}, cfgOver: Partial<CacheConfig> = {}, keyExtra = ''): Promise<Fixture> {
  const counts = new Map<string, number>()
  const clock = { now: Date.now() }
  const up = await listen(t, (req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const n = (counts.get(path) ?? 0) + 1
    counts.set(path, n)
    // the upstream's clock is the test's fake clock, so Date never disagrees with it
    res.setHeader('date', new Date(clock.now).toUTCString())
    const r = routes[path]
    if (r === undefined) { res.writeHead(404, { 'content-type': 'text/plain' }).end('no route'); return }
    r(req, res, n)
  })
  const cfg = cacheConfig(cfgOver)
  const store = new MemoryStore({ maxSize: cfg.memory.maxSize, maxEntrySize: cfg.memory.maxEntrySize })
  const cache = new HttpCache(cfg, { store, now: () => clock.now })
  t.teardown(() => cache.close())
  const a = agent(t)
  const handler = cacheHandler(cache, site(siteOver), up.origin, a, keyExtra)
  const gw = await listen(t, handler)
  return {
    cache,
    clock,
    hits: (p) => counts.get(p) ?? 0,
    settled: handler.settled,
    get: async (path, headers = {}, method = 'GET') => {
      const r = await request(gw.origin + path, { method: method as 'GET', headers: { host: 'demo.test', ...headers }, dispatcher: a })
      const body = await r.body.text()
      return { status: r.statusCode, headers: r.headers, body }
    }
  }
}
