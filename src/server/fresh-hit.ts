/**
 * The fresh-hit fast path (issue 15, item 3): a request the memory tier can
 * answer with a fresh primary entry is served synchronously from the
 * gateway's request handler, without `SiteHandler.handle` (an async
 * function, its promise and error handler, a CacheRequest and the general
 * lookup). It writes the same bytes through the same `HttpCache.serve`, and
 * leaves the same trail: the gateway records the request (access log,
 * request metrics, the operator page's counts) when the response closes, as
 * for any other request, `livery:cache:hit` is published, and the page's
 * hit is counted for warm.afterPurge. test/server/fresh-hit.test.ts serves
 * the same requests with the path on and off and compares all of it.
 *
 * Anything else falls through, before any side effect, to the general path,
 * which decides as it always did: methods other than GET and HEAD,
 * Cache-Control or Pragma (they change what the cache may answer with),
 * Authorization, Range (206/416), a logged-in session cookie, a theme
 * version still being fetched, Server-Timing (the site's setting, a trusted
 * proxy or the admin token), a watchdog that sheds, and every entry that is
 * not a fresh primary entry in the memory tier (stale, Vary, a lower tier,
 * nothing stored). Conditionals (If-None-Match, If-Modified-Since) are
 * taken: `serve` answers them with the same 304 on either path.
 *
 * Admission: none. A fresh hit takes no request-pool slot and never waits in
 * its queue: the pool bounds work that goes upstream, and a hit holds
 * nothing the pool protects (no upstream connection, no theme thread; it is
 * one synchronous write of bytes already in memory). Queuing it behind slow
 * upstream requests would let one stuck origin hold back pages that are
 * ready, which is what the pool exists to prevent (docs/architecture.md).
 * Event-loop lag is the one overload that a hit adds to, and the watchdog's
 * shed applies before this path (a shedding watchdog sends every request
 * to the general path, which sheds or serves it as before).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { HttpCache } from '../cache/index.ts'
import type { ClientInfo } from '../proxy/forwarded.ts'
import { newContext, type RequestContext } from './context.ts'
import type { RequestTarget } from './request-target.ts'
import { timingTokenHeader } from './server-timing.ts'
import type { SiteHandler } from './site-handler.ts'

/**
 * Serves `req` from a fresh memory-tier entry and returns its context, or
 * returns undefined having done nothing (the caller goes on with the
 * general path). `host` is the checked, normalised Host (`requestHost().key`).
 * `started` is when the request came in (performance.now()).
 */
export function serveFreshHit (cache: HttpCache, handler: SiteHandler, req: IncomingMessage, res: ServerResponse, client: ClientInfo, target: RequestTarget, host: string, started: number): RequestContext | undefined {
  const method = req.method
  if (method !== 'GET' && method !== 'HEAD') return undefined
  const h = req.headers
  if (h['cache-control'] !== undefined || h.pragma !== undefined || h.authorization !== undefined || h.range !== undefined ||
    h[timingTokenHeader] !== undefined || client.trusted || handler.site.serverTiming) return undefined
  const cookie = h.cookie
  if (cookie !== undefined && handler.sessionCookie(cookie)) return undefined
  const version = handler.theme === undefined ? '' : handler.theme.currentVersion()
  if (typeof version !== 'string') return undefined
  const t1 = performance.now()
  const entry = cache.freshEntry(handler.site, client.proto, host, target.pathAndQuery, version)
  if (entry === undefined) return undefined
  const ctx = newContext(target.path, started)
  ctx.cacheLookup = performance.now() - t1
  ctx.client = client.remoteAddress
  ctx.site = handler.site.name
  ctx.cache = 'HIT'
  ctx.bytes = method === 'HEAD' ? 0 : entry.body.length
  handler.hot?.hit(entry.meta.url)
  cache.serve(entry, req, res, 'HIT')
  return ctx
}
