/**
 * One site's request path: cache → pool → upstream → theme → cache → response.
 * Built once per site at start-up; `handle` only assembles.
 *
 * A cache hit touches nothing else: no pool slot, no theme lookup, no
 * upstream. Only work that goes upstream takes a slot in the request pool,
 * so a site whose upstream is stuck cannot hold back its own cached pages.
 */
import { channel } from 'node:diagnostics_channel'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { SiteConfig } from '../config/types.ts'
import type { Logger } from '../log.ts'
import type { CacheRequest, Fill, HttpCache } from '../cache/index.ts'
import type { RequestPool, Ticket } from '../pool/index.ts'
import { Upstream, type UpstreamResponse } from '../proxy/upstream.ts'
import { clientInfo, collectBody, earlyHintsTo, newCapture, requestHasBody, streamResponse, type ClientInfo } from '../proxy/pass.ts'
import { clientResponseHeaders } from '../proxy/headers.ts'
import { LiveryError, liveryError, type ErrorCode } from '../errors.ts'
import { newContext, sendError, type RequestContext } from './context.ts'
import { decide } from '../cache/policy.ts'
import type { PageThemer } from './themer.ts'
import { passCookieRule, withoutCookie, type CookieRule } from '../cache/pass-cookies.ts'
import type { HotPages } from '../worker/hot-pages.ts'

export interface SiteHandlerOptions {
  readonly logger: Logger
  readonly cache: HttpCache
  readonly pool: RequestPool
  readonly theme?: PageThemer
  /** Largest page buffered for theming; larger pages pass unthemed. */
  readonly maxThemedSize: number
  /** Counts hits per page for warming after a purge (sites with warm.afterPurge). */
  readonly hot?: HotPages
}

/** What warming one page did. */
export type WarmOutcome = 'hit' | 'stored'

/** What the gateway settled about a request before handing it to its site. */
export interface SiteRequest {
  /** Path and query, as sent upstream. */
  readonly pathAndQuery: string
  /** The checked Host, normalised for the cache key (`requestHost`). */
  readonly host: string
  /** `http`, or `https` when the client spoke TLS to us or to a trusted proxy. */
  readonly scheme: string
}

/** A background refresh not started because the site's cap was reached (`{ site, path }`). */
const refreshDeferredChannel = channel('livery:cache:refresh_deferred')

/** Errors that are the client's own doing or already logged by the pool. */
const quietCodes: ReadonlySet<ErrorCode> = new Set(['LIVERY_ERR_CLIENT_ABORTED', 'LIVERY_ERR_QUEUE_FULL', 'LIVERY_ERR_QUEUE_TIMEOUT'])

export class SiteHandler {
  readonly site: SiteConfig
  readonly upstream: Upstream
  readonly theme: PageThemer | undefined
  readonly #logger: Logger
  readonly #cache: HttpCache
  readonly #pool: RequestPool
  readonly #maxThemed: number
  /** Counts hits per page for warming after a purge (sites with warm.afterPurge); the fresh-hit path counts too. */
  readonly hot: HotPages | undefined
  readonly #background = new Set<Promise<void>>()
  /**
   * Background refreshes this site runs at once: a quarter of its slots. Pages
   * warmed together expire together, and 1,000 refreshes in one window took
   * every slot from clients (issue 15, item 9). A refresh over the cap is not
   * started: the stale copy was already served, and the next request for the
   * page tries again, so the storm is spread over the following requests.
   */
  readonly #maxRefreshes: number
  readonly #sessionCookie: CookieRule

  constructor (site: SiteConfig, opts: SiteHandlerOptions) {
    this.site = site
    this.upstream = new Upstream(site)
    this.theme = opts.theme
    this.#logger = opts.logger.child({ site: site.name })
    this.#cache = opts.cache
    this.#pool = opts.pool
    this.#maxThemed = opts.maxThemedSize
    this.#maxRefreshes = Math.max(1, Math.floor(site.pool.maxConcurrent / 4))
    this.#sessionCookie = passCookieRule(site.passCookies)
    this.hot = opts.hot
  }

  /** True for a logged-in view (site.passCookies): never answered from the cache. */
  sessionCookie (cookie: string): boolean {
    return this.#sessionCookie(cookie)
  }

  async handle (req: IncomingMessage, res: ServerResponse, ctx: RequestContext, target: SiteRequest): Promise<void> {
    ctx.site = this.site.name
    const pathAndQuery = target.pathAndQuery
    let keyed = req.headers
    const cookie = req.headers.cookie
    if (cookie !== undefined) {
      if (this.#sessionCookie(cookie) && (req.method === 'GET' || req.method === 'HEAD')) {
        // A logged-in view: never answered from the cache, never stored (unsafe methods still invalidate below).
        ctx.cache = 'BYPASS'
        await this.#withSlot(req, res, ctx, signal => this.#pass(req, res, ctx, pathAndQuery, signal, undefined))
        return
      }
      // Other cookies travel upstream as sent, but the cache keys (and Vary: Cookie) as if there were none.
      keyed = withoutCookie(req.headers)
    }
    const creq: CacheRequest = { method: req.method ?? 'GET', url: pathAndQuery, host: target.host, scheme: target.scheme, headers: keyed }
    let version = this.theme?.currentVersion() ?? ''
    // Two clock reads per request for Server-Timing and the access log; a
    // pending theme version is the theme fetch this request waits for.
    const t0 = performance.now()
    if (typeof version !== 'string') {
      version = await version
      ctx.themeWait = performance.now() - t0
    }
    const t1 = performance.now()
    let r = this.#cache.lookup(creq, this.site, version)
    if (r instanceof Promise) r = await r
    ctx.cacheLookup = performance.now() - t1
    switch (r.kind) {
      case 'hit':
        this.hot?.hit(r.entry.meta.url)
        ctx.cache = r.xcache
        ctx.bytes = req.method === 'HEAD' ? 0 : r.entry.body.length
        this.#cache.serve(r.entry, req, res, r.xcache)
        return
      case 'stale':
        ctx.cache = r.xcache
        ctx.bytes = req.method === 'HEAD' ? 0 : r.entry.body.length
        this.#cache.serve(r.entry, req, res, r.xcache)
        if (r.refresh !== undefined) this.#refreshInBackground(r.refresh, req, pathAndQuery)
        return
      case 'only-if-cached':
        sendError(req, res, ctx, liveryError('LIVERY_ERR_NOT_CACHED'))
        return
      case 'miss':
        ctx.cache = 'MISS'
        await this.#withSlot(req, res, ctx, signal => this.#fill(r.fill, req, clientInfo(req), res, ctx, pathAndQuery, signal))
        return
      case 'pass':
        ctx.cache = 'BYPASS'
        await this.#withSlot(req, res, ctx, signal => this.#pass(req, res, ctx, pathAndQuery, signal, r.invalidate ? creq : undefined))
    }
  }

  /**
   * Warming (a worker job): makes sure `pathAndQuery` on `host` is in the
   * cache as a plain GET would store it, themed where the theme applies.
   * A page already fresh is left alone ('hit'); otherwise it is fetched
   * through the same fill a miss uses, inside a pool slot, so the waiting
   * list, theming and every cache tier are the request path's own. Rejects
   * when the page could not be stored (the upstream failed or the answer is
   * not cacheable), so the job is retried.
   */
  async warm (host: string, pathAndQuery: string): Promise<WarmOutcome> {
    const headers = { host, 'user-agent': 'livery-warm' }
    // Only the headers are read by a fill that has no client response to write.
    const req = { method: 'GET', headers } as Pick<IncomingMessage, 'method' | 'headers'> as IncomingMessage
    const creq: CacheRequest = { method: 'GET', url: pathAndQuery, host, headers }
    let version = this.theme?.currentVersion() ?? ''
    if (typeof version !== 'string') version = await version
    let r = this.#cache.lookup(creq, this.site, version)
    if (r instanceof Promise) r = await r
    if (r.kind === 'hit') return 'hit'
    const fill = r.kind === 'miss' ? r.fill : r.kind === 'stale' ? r.refresh : undefined
    if (fill !== undefined) {
      const ctx: RequestContext = { ...newContext(pathAndQuery), site: this.site.name, cache: 'MISS' }
      const client: ClientInfo = { remoteAddress: '127.0.0.1', peer: '127.0.0.1', trusted: false, proto: 'http', hopProto: 'http', host }
      let ticket: Ticket | undefined
      try {
        ticket = await this.#pool.acquire(this.site.name)
        await this.#fill(fill, req, client, undefined, ctx, pathAndQuery, ticket.signal)
      } catch (err) {
        fill.fail(err)
        throw err
      } finally {
        ticket?.release()
      }
    }
    // only-if-cached asks the cache without starting a fill of its own.
    const check: CacheRequest = { ...creq, headers: { ...headers, 'cache-control': 'only-if-cached' } }
    let after = this.#cache.lookup(check, this.site, version)
    if (after instanceof Promise) after = await after
    if (after.kind === 'hit' || after.kind === 'stale') return 'stored'
    throw liveryError('LIVERY_ERR_WARM', `http://${host}${pathAndQuery}`, r.kind === 'pass' ? 'the request is not cacheable' : 'the upstream failed or its answer is not cacheable')
  }

  /** Runs upstream work inside a pool slot; every failure ends in one coded answer. */
  async #withSlot (req: IncomingMessage, res: ServerResponse, ctx: RequestContext, work: (signal: AbortSignal) => Promise<void>): Promise<void> {
    // A slot free now is taken synchronously; only a request that may queue needs a signal for its client.
    let ticket = this.#pool.tryAcquire(this.site.name)
    let client: AbortController | undefined
    const onClose = (): void => {
      if (res.writableFinished) return
      if (ticket !== undefined) ticket.clientGone()
      else client?.abort(new LiveryError('LIVERY_ERR_CLIENT_ABORTED'))
    }
    // on, not once: once wraps the listener in a closure of its own, and the finally below removes it in any case.
    res.on('close', onClose)
    try {
      if (ticket === undefined) {
        client = new AbortController()
        ticket = await this.#pool.acquire(this.site.name, client.signal)
      }
      ctx.queueWait = ticket.queueWait
      await work(ticket.signal)
    } catch (err) {
      this.#logFailure(err)
      sendError(req, res, ctx, err)
    } finally {
      ticket?.release()
      res.off('close', onClose)
    }
  }

  /**
   * A cache miss (or revalidation): one request upstream, shared with the
   * waiting list. `res` is undefined for a background refresh. The fill is a
   * GET whatever the client sent, and is themed as one.
   */
  async #fill (fill: Fill, req: IncomingMessage, client: ClientInfo, res: ServerResponse | undefined, ctx: RequestContext, path: string, signal: AbortSignal): Promise<void> {
    let up: UpstreamResponse
    const framing = this.upstream.framingErrors
    try {
      up = await this.upstream.forward({ method: fill.upstreamMethod, path, headers: fill.upstreamHeaders(req.headers), body: null, signal, context: client, onEarlyHints: res === undefined ? undefined : earlyHintsTo(req, res), timing: ctx })
    } catch (err) {
      const stale = fill.fail(err)
      if (stale === undefined || res === undefined) throw err
      this.#logFailure(err)
      ctx.cache = 'STALE'
      this.#cache.serve(stale, req, res, 'STALE')
      return
    }
    if (this.theme !== undefined && this.theme.shouldTheme({ method: fill.upstreamMethod, url: path, headers: req.headers }, { status: up.status, headers: up.headers })) {
      await this.#fillThemed(fill, up, req, res, ctx, path, signal, framing)
      return
    }
    const decision = fill.response(up.status, up.headers)
    if (decision.action === 'serve') {
      await up.body.dump()
      ctx.cache = decision.xcache
      if (res !== undefined) this.#cache.serve(decision.entry, req, res, decision.xcache)
      return
    }
    if (res === undefined) {
      // A background refresh: nobody to stream to, only the store.
      const got = await collectBody(up.body, decision.action === 'store' ? decision.maxBytes : 0)
      if (decision.action === 'store') await fill.finish(got.chunks, got.complete && await this.#framedWell(framing))
      return
    }
    if (decision.action === 'pass') ctx.cache = 'MISS'
    const capture = decision.action === 'store' ? newCapture(decision.maxBytes) : undefined
    try {
      await streamResponse(this.upstream, up, res, signal, ctx, { 'x-cache': 'MISS' }, capture)
    } finally {
      if (capture !== undefined) await fill.finish(capture.chunks, capture.complete && await this.#framedWell(framing))
    }
  }

  /** A miss for a page the theme applies to: buffer, theme, store the themed page. */
  async #fillThemed (fill: Fill, up: UpstreamResponse, req: IncomingMessage, res: ServerResponse | undefined, ctx: RequestContext, path: string, signal: AbortSignal, framing: number): Promise<void> {
    const got = await collectBody(up.body, this.#maxThemed)
    if (!got.complete) {
      fill.fail()
      throw liveryError('LIVERY_ERR_UPSTREAM_RESPONSE', this.site.upstream, `the page broke off or is larger than ${this.#maxThemed} bytes, the theming limit`)
    }
    // The stored page is identity-encoded; compression is left to the client side of the response.
    const { ['accept-encoding']: _ae, ...requestHeaders } = req.headers
    const themeStart = performance.now()
    const page = await this.#applyTheme(up, Buffer.concat(got.chunks), requestHeaders, path, signal)
    ctx.transform = performance.now() - themeStart
    if (page.unavailable && page.timedOut && this.#storeTimedOut(fill, up, requestHeaders)) {
      // A page whose transform ran past its budget: its unthemed copy is stored for the theme's
      // rememberTimeout only (Livery's own targeted field caps the freshness), so the clients
      // hammering it get HITs instead of an upstream fetch each (issue 13).
      // No validators either: a 304 must not renew the unthemed copy for the page's full lifetime.
      const policy = { ...up.headers, etag: undefined, 'last-modified': undefined, [this.site.targetedField.toLowerCase()]: `max-age=${Math.ceil((this.theme?.unthemedTtl ?? 0) / 1000)}` }
      const { etag: _etag, 'last-modified': _lm, ...stored } = page.headers
      const decision = fill.response(up.status, policy, stored)
      if (decision.action === 'store') await fill.finish(page.body, await this.#framedWell(framing))
      else if (decision.action === 'serve') {
        ctx.cache = decision.xcache
        if (res !== undefined) this.#cache.serve(decision.entry, req, res, decision.xcache)
        return
      }
      if (res !== undefined) writeBuffered(req, res, ctx, up.status, { ...page.headers, 'x-cache': 'MISS' }, page.body)
      return
    }
    if (page.unavailable) {
      // Never store an unthemed page under the themed key; stale themed output is better if there is one.
      const stale = fill.fail()
      if (res === undefined) return
      if (stale !== undefined) {
        ctx.cache = 'STALE'
        this.#cache.serve(stale, req, res, 'STALE')
        return
      }
      writeBuffered(req, res, ctx, up.status, page.headers, page.body)
      return
    }
    const decision = fill.response(up.status, up.headers, page.headers)
    if (decision.action === 'serve') {
      ctx.cache = decision.xcache
      if (res !== undefined) this.#cache.serve(decision.entry, req, res, decision.xcache)
      return
    }
    if (decision.action === 'store') await fill.finish(page.body, await this.#framedWell(framing))
    if (res !== undefined) writeBuffered(req, res, ctx, up.status, { ...page.headers, 'x-cache': 'MISS' }, page.body)
  }

  /** Whether a timed-out page's unthemed copy may be stored briefly: the theme asks for it and the upstream's answer is storable at all. */
  #storeTimedOut (fill: Fill, up: UpstreamResponse, requestHeaders: IncomingMessage['headers']): boolean {
    const ttl = this.theme?.unthemedTtl ?? 0
    if (ttl < 1000 || this.site.targetedField === '') return false
    return decide({ url: '', method: 'GET', reqHeaders: requestHeaders, status: up.status, resHeaders: up.headers, requestTime: fill.requestTime, responseTime: Date.now(), site: this.site }).store
  }

  /** Pass mode: the request is not cacheable; forward it, theme HTML answers, stream the rest. */
  async #pass (req: IncomingMessage, res: ServerResponse, ctx: RequestContext, path: string, signal: AbortSignal, invalidate: CacheRequest | undefined): Promise<void> {
    const up = await this.upstream.forward({ method: req.method ?? 'GET', path, headers: req.headers, body: requestHasBody(req) ? req : null, signal, context: clientInfo(req), onEarlyHints: earlyHintsTo(req, res), timing: ctx })
    if (invalidate !== undefined) await this.#cache.invalidate(invalidate, up.status, up.headers)
    if (this.theme !== undefined && this.theme.shouldTheme({ method: req.method ?? 'GET', url: path, headers: req.headers }, { status: up.status, headers: up.headers })) {
      const got = await collectBody(up.body, this.#maxThemed)
      if (!got.complete) throw liveryError('LIVERY_ERR_UPSTREAM_RESPONSE', this.site.upstream, `the page broke off or is larger than ${this.#maxThemed} bytes, the theming limit`)
      const themeStart = performance.now()
      const page = await this.#applyTheme(up, Buffer.concat(got.chunks), req.headers, path, signal)
      ctx.transform = performance.now() - themeStart
      writeBuffered(req, res, ctx, up.status, { ...page.headers, 'x-cache': 'BYPASS' }, page.body)
      return
    }
    await streamResponse(this.upstream, up, res, signal, ctx, { 'x-cache': 'BYPASS' })
  }

  async #applyTheme (up: UpstreamResponse, body: Buffer, requestHeaders: IncomingMessage['headers'], path: string, signal: AbortSignal): Promise<{ headers: Record<string, string | string[]>, body: Buffer, unavailable: boolean, timedOut?: boolean }> {
    const theme = this.theme!
    const base = clientResponseHeaders(up.headers, this.upstream.consumedFields)
    // Root-relative href subrequests resolve against this URL: they must go to
    // the site's upstream directly, never back out through public DNS.
    const url = this.site.upstream + path
    const result = await theme.apply({ url, headers: up.headers, requestHeaders, body, signal })
    if (result.kind === 'themed') {
      delete base['content-length']
      delete base['content-encoding']
      delete base.etag
      return { headers: { ...base, ...result.headers }, body: result.body, unavailable: false }
    }
    if (result.kind === 'unavailable' || result.kind === 'timeout') {
      this.#logger.warn({ reason: result.reason, path }, result.kind === 'timeout' ? 'theming took too long; page served unthemed' : 'theme unavailable; page served unthemed')
      base['x-livery-theme'] = result.kind === 'timeout' ? 'timeout' : 'unavailable'
      base['content-length'] = String(body.length)
      return { headers: base, body, unavailable: true, timedOut: result.kind === 'timeout' }
    }
    base['content-length'] = String(body.length)
    return { headers: base, body, unavailable: false }
  }

  /**
   * False when the upstream sent more bytes than a response's Content-Length
   * since `before` was read: the stored body could be a truncation of what
   * the origin meant, so it is not stored (issue 5). Coarse: a concurrent
   * misframed response on another connection also skips one store.
   */
  async #framedWell (before: number): Promise<boolean> {
    await this.upstream.settled()
    return this.upstream.framingErrors === before
  }

  #refreshInBackground (fill: Fill, req: IncomingMessage, path: string): void {
    if (this.#background.size >= this.#maxRefreshes) {
      // Releases the waiting list with the stale copy, so the next request may refresh.
      fill.fail()
      if (refreshDeferredChannel.hasSubscribers) refreshDeferredChannel.publish({ site: this.site.name, path })
      return
    }
    const ctx: RequestContext = { ...newContext(path), site: this.site.name, cache: 'UPDATING' }
    // Taken now: the client's socket may be gone by the time the refresh runs.
    const client = clientInfo(req)
    const job = (async () => {
      let ticket: Ticket | undefined
      try {
        ticket = await this.#pool.acquire(this.site.name)
        await this.#fill(fill, req, client, undefined, ctx, path, ticket.signal)
      } catch (err) {
        fill.fail(err)
        this.#logFailure(err)
      } finally {
        ticket?.release()
      }
    })()
    this.#background.add(job)
    void job.finally(() => this.#background.delete(job))
  }

  #logFailure (err: unknown): void {
    const e = err as LiveryError
    if (quietCodes.has(e.code)) return
    this.#logger.warn({ upstream: this.site.upstream, code: e.code, cause: (e.cause as Error | undefined)?.message }, e.message)
  }

  /** Resolves when background refreshes have finished (shutdown, tests). */
  async settled (): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background])
  }

  async close (): Promise<void> {
    await this.settled()
    await this.upstream.close()
  }

  destroy (): Promise<void> {
    return this.upstream.destroy()
  }
}

function writeBuffered (req: IncomingMessage, res: ServerResponse, ctx: RequestContext, status: number, headers: Record<string, string | string[]>, body: Buffer): void {
  headers['content-length'] = String(body.length)
  res.writeHead(status, headers)
  if (req.method === 'HEAD') res.end()
  else {
    ctx.bytes += body.length
    res.end(body)
  }
}
