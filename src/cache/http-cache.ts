/**
 * The orchestrator the server calls: lookup → serve | fill, plus
 * invalidation and purge. It decides and writes cached responses; the proxy
 * does upstream I/O (see `fill.ts` for the protocol).
 *
 * Hit path (STYLE §2.7): one string concat for the key (`key.ts`), one synchronous LRU
 * read, one number compare, then `writeHead` with the entry's prebuilt
 * header array (only `age` and `x-cache` filled in) and `end(body)`.
 */
import { channel } from 'node:diagnostics_channel'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { coarseNow } from '../clock.ts'
import type { CacheConfig, SiteConfig } from '../config/types.ts'
import { liveryError } from '../errors.ts'
import { type Logger, silentLogger } from '../log.ts'
import { Coalescer, Lock, type Release } from './coalesce.ts'
import { CacheEntry, softPurged, F_MUST_REVALIDATE, F_SHARED_AUTH, F_VARY_MARKER } from './entry.ts'
import { Fill, type FillHost, type Outcome } from './fill.ts'
import { cacheKey } from './key.ts'
import type { MissLock } from './miss-lock.ts'
import { type Headers, type RequestDirectives, currentAge, notModified, requestCacheControl, varyValue } from './policy.ts'
import { type CacheStore, type PurgeSelector, type TierStats, matchesSelector } from './store.ts'
import { ifRangeMatches, parseRange } from './range.ts'

const hitChannel = channel('livery:cache:hit')
const missChannel = channel('livery:cache:miss')
const staleChannel = channel('livery:cache:stale')
const storeErrorChannel = channel('livery:cache:store_error')

export interface CacheRequest {
  readonly method: string
  /** Path and query as received (`req.url`). */
  readonly url: string
  /** Host (`req.headers.host`), lowercased by the caller or here. */
  readonly host: string
  readonly headers: Headers
  /** @default 'http' */
  readonly scheme?: string
  /** Aborts waiting on a coalesced fetch when the client goes away. */
  readonly signal?: AbortSignal
}

export type XCache = 'HIT' | 'MISS' | 'STALE' | 'UPDATING' | 'REVALIDATED' | 'BYPASS'

export type LookupResult =
  /** Serve `entry` with `cache.serve(entry, req, res, xcache)`. */
  | { readonly kind: 'hit', readonly entry: CacheEntry, readonly xcache: 'HIT' | 'STALE' }
  /** Serve `entry` stale; if `refresh` is set, run it in the background (only one per key). */
  | { readonly kind: 'stale', readonly entry: CacheEntry, readonly xcache: 'UPDATING', readonly refresh: Fill | undefined }
  /** Go upstream through `fill` (X-Cache: MISS). */
  | { readonly kind: 'miss', readonly fill: Fill }
  /** Not cacheable: forward (X-Cache: BYPASS); if `invalidate`, call `cache.invalidate` with the response. */
  | { readonly kind: 'pass', readonly invalidate: boolean }
  /** `Cache-Control: only-if-cached` and nothing usable: answer 504 (RFC 9111 §5.2.1.7). */
  | { readonly kind: 'only-if-cached' }

export interface HttpCacheOptions {
  readonly store: CacheStore
  readonly logger?: Logger
  /** Clock for freshness and Age. @default coarseNow */
  readonly now?: () => number
  /** The waiting list above this process (gateway primary, Redis): one fetch per gateway / deployment. */
  readonly missLock?: MissLock
}

export interface CacheStats {
  readonly tiers: Readonly<Record<string, TierStats>>
  readonly inFlight: number
  readonly waiting: number
  readonly hitForMiss: number
}

const kPass: LookupResult = { kind: 'pass', invalidate: false }
const kPassInvalidate: LookupResult = { kind: 'pass', invalidate: true }
const kOnlyIfCached: LookupResult = { kind: 'only-if-cached' }
const EMPTY = Buffer.alloc(0)
/** Stored fields a 416 carries (RFC 9110 §15.5.17 asks only for Content-Range). */
const rangeErrorFields = new Set(['date', 'etag', 'last-modified', 'cache-control', 'vary'])

interface Ctx {
  readonly req: CacheRequest
  readonly site: SiteConfig
  readonly primary: string
  readonly base: string
  readonly rd: RequestDirectives | undefined
}

export class HttpCache {
  readonly #store: CacheStore
  readonly #co: Coalescer<Outcome>
  readonly #now: () => number
  readonly #log: Logger
  readonly #host: FillHost
  readonly #maxEntrySize: number
  readonly #missLock: MissLock | undefined
  /** The store's list of entries removed by identity (TieredStore.refuses): a waiter handed one fetches instead. */
  readonly #refuses: ((e: CacheEntry) => boolean) | undefined
  /** Purges entered here so far: an entry another member fetched while one came in is served, not kept. */
  #purges = 0
  #closed = false

  constructor (config: CacheConfig, opts: HttpCacheOptions) {
    this.#store = opts.store
    this.#now = opts.now ?? coarseNow
    this.#log = (opts.logger ?? silentLogger).child({ module: 'cache' })
    this.#maxEntrySize = config.memory.maxEntrySize
    this.#missLock = opts.missLock
    const refusing = opts.store as { refuses?: (e: CacheEntry) => boolean }
    this.#refuses = refusing.refuses?.bind(opts.store)
    // A request after a purge must not wait for a fill that started before it (docs/architecture.md, "Coherence").
    const banned = opts.store as { onBan?: (fn: (id: string, sel: PurgeSelector, soft: boolean) => void) => void }
    banned.onBan?.((id, sel, soft) => {
      this.#purges++
      this.#co.detachAll({ sel, soft })
      this.#missLock?.detachAll(id)
    })
    this.#co = new Coalescer<Outcome>({ lockTimeout: config.lockTimeout, hitForMiss: config.hitForMiss, now: this.#now })
    this.#host = {
      now: this.#now,
      maxEntrySize: this.#maxEntrySize,
      commit: (primary, entry, lock) => {
        // A fill that was running when a purge was entered brings what the purge removed.
        let e: CacheEntry | undefined = entry
        for (const b of lock?.bans ?? []) {
          if (!matchesSelector(entry, b.sel as PurgeSelector)) continue
          if (!b.soft) { e = undefined; break }
          e = softPurged(e, this.#now())
        }
        return e === undefined ? Promise.resolve(false) : this.#commit(primary, e)
      },
      remove: async (key) => { await this.#store.delete(key).catch((err: unknown) => { this.#storeError('delete', err) }) },
      uncacheable: (key, reason) => {
        this.#co.markHitForMiss(key)
        // Every pass of a hit-for-miss key comes here: no log object unless debug lines are written.
        if (this.#log.isLevelEnabled('debug')) this.#log.debug({ key, reason }, 'response not stored')
      },
      cacheable: (key) => { this.#co.clearHitForMiss(key) }
    }
  }

  /**
   * Looks a request up. Synchronous when the store answers from memory;
   * a promise when it must wait (coalesced miss, async tier).
   * `keyExtra` (the theme version) is part of the key.
   */
  lookup (req: CacheRequest, site: SiteConfig, keyExtra = ''): LookupResult | Promise<LookupResult> {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', 'the HTTP cache')
    const method = req.method
    if (method !== 'GET' && method !== 'HEAD') return method === 'OPTIONS' || method === 'TRACE' ? kPass : kPassInvalidate
    const h = req.headers
    const scheme = req.scheme ?? 'http'
    const host = req.host.toLowerCase()
    const base = scheme + '://' + host + req.url
    const primary = cacheKey({ site: site.name, scheme, host, target: req.url, extra: keyExtra })
    const store = this.#store
    if (store.getSync !== undefined) {
      const e = store.getSync(primary)
      if (e !== undefined) {
        if (h['cache-control'] === undefined && h.pragma === undefined && h.authorization === undefined && (e.meta.flags & F_VARY_MARKER) === 0 && residentNow(this.#now(), e.meta) < e.meta.freshUntil) {
          return { kind: 'hit', entry: e, xcache: 'HIT' }
        }
        return this.#found(e, this.#ctx(req, site, primary, base))
      }
      if (store.syncComplete) return this.#evaluate(undefined, primary, this.#ctx(req, site, primary, base))
    }
    const ctx = this.#ctx(req, site, primary, base)
    // A key whose last response was uncacheable (hit-for-miss) goes upstream
    // without asking the slower tiers, as Varnish's hit-for-miss object
    // answers its lookup: on a pass-heavy page they cost a sha256 of the key
    // and a disk index lookup (or a Redis round trip) per request, for an
    // answer that is almost always "nothing" (issue 15, item 6). A request
    // that only wants what is stored still looks everywhere.
    if (ctx.rd?.onlyIfCached !== true && this.#co.isHitForMiss(primary)) return this.#miss(primary, undefined, ctx, true)
    return this.#get(primary).then((e) => this.#found(e, ctx))
  }

  /**
   * The fresh-hit fast path's lookup (src/server/fresh-hit.ts): the entry
   * `lookup` would answer `{ kind: 'hit', xcache: 'HIT' }` with from its
   * first, synchronous check, or undefined for anything else (then the
   * caller runs `lookup`, which decides as before). The caller has checked
   * the method (GET or HEAD) and that the request carries no Cache-Control,
   * Pragma or Authorization. Never starts a fill, never waits, never throws.
   */
  freshEntry (site: SiteConfig, scheme: string, host: string, target: string, keyExtra: string): CacheEntry | undefined {
    const store = this.#store
    if (this.#closed || store.getSync === undefined) return undefined
    const e = store.getSync(cacheKey({ site: site.name, scheme, host: host.toLowerCase(), target, extra: keyExtra }))
    if (e === undefined || (e.meta.flags & F_VARY_MARKER) !== 0 || !(residentNow(this.#now(), e.meta) < e.meta.freshUntil)) return undefined
    return e
  }

  /**
   * Writes a cached response: prebuilt headers plus `age` and `x-cache`,
   * a 304 for a matching client conditional, no body for HEAD.
   * Set no headers on `res` before calling it (that forces Node's slow path).
   */
  serve (entry: CacheEntry, req: IncomingMessage, res: ServerResponse, xcache: XCache): void {
    const h = req.headers
    const m = entry.meta
    const ms = m.initialAge + residentNow(this.#now(), m) - m.responseTime
    const age = ms > 0 ? String(Math.floor(ms / 1000)) : '0'
    if (xcache === 'HIT') {
      if (hitChannel.hasSubscribers) hitChannel.publish({ tier: entry.tier })
    } else if ((xcache === 'STALE' || xcache === 'UPDATING') && staleChannel.hasSubscribers) {
      staleChannel.publish({ tier: entry.tier, xcache })
    }
    if ((h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined) && entry.status === 200 && notModified(entry, h)) {
      res.writeHead(304, entry.notModifiedWire(age, xcache))
      res.end()
      return
    }
    if (h.range !== undefined && entry.status === 200 && req.method === 'GET' && this.#serveRange(entry, h, res, age, xcache)) return
    res.writeHead(entry.status, entry.wire(age, xcache))
    if (req.method === 'HEAD') res.end()
    else res.end(entry.body)
  }

  /** A single Range from a complete stored 200 (RFC 9110 §14): 206 or 416; false to send the whole response. */
  #serveRange (entry: CacheEntry, h: Headers, res: ServerResponse, age: string, xcache: XCache): boolean {
    const ifRange = h['if-range']
    if (ifRange !== undefined && !ifRangeMatches(entry, typeof ifRange === 'string' ? ifRange : ifRange.join(', '))) return false
    const range = h.range
    const length = entry.body.length
    const r = parseRange(typeof range === 'string' ? range : (range ?? []).join(', '), length)
    if (r.kind === 'full') return false
    const raw = entry.rawHeaders
    if (r.kind === 'unsatisfiable') {
      const w: string[] = []
      for (let i = 0; i < raw.length; i += 2) if (rangeErrorFields.has(raw[i])) w.push(raw[i], raw[i + 1])
      w.push('content-range', `bytes */${length}`, 'content-length', '0', 'age', age, 'x-cache', xcache)
      res.writeHead(416, w)
      res.end()
      return true
    }
    const w: string[] = []
    for (let i = 0; i < raw.length; i += 2) if (raw[i] !== 'content-length') w.push(raw[i], raw[i + 1])
    w.push('content-range', `bytes ${r.start}-${r.end}/${length}`, 'content-length', String(r.end - r.start + 1), 'age', age, 'x-cache', xcache)
    res.writeHead(206, w)
    res.end(entry.body.subarray(r.start, r.end + 1))
    return true
  }

  /**
   * After an unsafe method: a non-error response invalidates the request URL
   * and its same-origin Location / Content-Location (RFC 9111 §4.4), in
   * every Vary variant and theme version. Resolves the entries removed.
   */
  async invalidate (req: CacheRequest, status: number, resHeaders: Headers): Promise<number> {
    const m = req.method
    if (m === 'GET' || m === 'HEAD' || m === 'OPTIONS' || m === 'TRACE' || status < 200 || status >= 400) return 0
    const base = (req.scheme ?? 'http') + '://' + req.host.toLowerCase() + req.url
    const urls = [base]
    let origin: string
    try { origin = new URL(base).origin } catch { return this.purge({ urls }) }
    for (const name of ['location', 'content-location']) {
      const raw = resHeaders[name]
      const v = typeof raw === 'string' ? raw : raw?.[0]
      if (v === undefined) continue
      try {
        const u = new URL(v, base)
        if (u.origin === origin) urls.push(u.protocol + '//' + u.host + u.pathname + u.search)
      } catch { /* an unparsable Location invalidates nothing more */ }
    }
    return this.purge({ urls })
  }

  /** Purges entries in the store (hard: delete; soft: mark stale). Resolves the count. */
  async purge (sel: PurgeSelector, opts: { soft?: boolean } = {}): Promise<number> {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', 'the HTTP cache')
    return this.#store.purge(sel, { soft: opts.soft === true, now: this.#now() })
  }

  stats (): CacheStats {
    return { tiers: this.#store.stats(), ...this.#co.stats() }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#co.close()
    await Promise.all([this.#store.close(), this.#missLock?.close()])
  }

  async destroy (err?: Error): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#co.close()
    await Promise.all([this.#store.destroy(err), this.#missLock?.destroy()])
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.close()
  }

  // --- internals ---------------------------------------------------------------

  #ctx (req: CacheRequest, site: SiteConfig, primary: string, base: string): Ctx {
    const h = req.headers
    const rd = h['cache-control'] === undefined && h.pragma === undefined ? undefined : requestCacheControl(h)
    return { req, site, primary, base, rd }
  }

  #get (key: string): Promise<CacheEntry | undefined> {
    return this.#store.get(key).catch((err: unknown) => { this.#storeError('get', err); return undefined })
  }

  #found (e: CacheEntry | undefined, ctx: Ctx): LookupResult | Promise<LookupResult> {
    if (e === undefined || (e.meta.flags & F_VARY_MARKER) === 0) return this.#evaluate(e, ctx.primary, ctx)
    const key = variantKey(ctx.primary, e.meta.vary.map((n) => varyValue(ctx.req.headers[n])))
    const store = this.#store
    if (store.getSync !== undefined) {
      const v = store.getSync(key)
      if (v !== undefined || store.syncComplete) return this.#evaluate(v, key, ctx)
    }
    return this.#get(key).then((v) => this.#evaluate(v, key, ctx))
  }

  #evaluate (e: CacheEntry | undefined, key: string, ctx: Ctx): LookupResult | Promise<LookupResult> {
    const rd = ctx.rd
    if (e === undefined || (e.meta.flags & F_VARY_MARKER) !== 0) return this.#miss(key, undefined, ctx)
    const m = e.meta
    // RFC 9111 §3.5: not revalidated either, or a 304 would hand this entry over all the same.
    if ((m.flags & F_SHARED_AUTH) === 0 && ctx.req.headers.authorization !== undefined) return kPass
    const now = residentNow(this.#now(), m)
    let fresh = now < m.freshUntil
    let wantsFresher = false
    if (rd !== undefined) {
      if (rd.noCache) return this.#miss(key, e, ctx)
      // max-age=0 (a browser's reload) asks for age ≤ 0: a stored response is
      // always older than the request, even when the coarse clock has not moved.
      if (rd.maxAge !== undefined && (rd.maxAge === 0 || currentAge(m, now) > rd.maxAge)) { fresh = false; wantsFresher = true }
      if (rd.minFresh !== undefined && m.freshUntil - now < rd.minFresh) { fresh = false; wantsFresher = true }
      if (!fresh && !wantsFresher && rd.maxStale !== undefined && (m.flags & F_MUST_REVALIDATE) === 0 && now - m.freshUntil <= rd.maxStale) {
        return { kind: 'hit', entry: e, xcache: 'STALE' }
      }
    }
    if (fresh) return { kind: 'hit', entry: e, xcache: 'HIT' }
    if (rd?.onlyIfCached === true) return kOnlyIfCached
    if (!wantsFresher && now < m.staleUntil) {
      const lock = this.#co.tryLead(key)
      return { kind: 'stale', entry: e, xcache: 'UPDATING', refresh: lock === undefined ? undefined : this.#fill(key, e, ctx, lock, true) }
    }
    return this.#miss(key, e, ctx)
  }

  /** `hitForMiss`: the caller has just found `key` hit-for-miss, so the waiting list need not look it up again. */
  #miss (key: string, stale: CacheEntry | undefined, ctx: Ctx, hitForMiss = false): LookupResult | Promise<LookupResult> {
    if (ctx.rd?.onlyIfCached === true) return kOnlyIfCached
    // A Range request with nothing stored goes upstream as it is: the origin's
    // 206 is passed through, never stored as a complete object, and a large
    // file the cache would not keep can still be fetched in parts.
    if (stale === undefined && ctx.req.headers.range !== undefined && ctx.req.method === 'GET') return kPass
    // acquire() answers undefined for a hit-for-miss key: the fill goes alone.
    const a = hitForMiss ? undefined : this.#co.acquire(key, ctx.req.signal)
    if (a === undefined) return { kind: 'miss', fill: this.#fill(key, stale, ctx, undefined, false) }
    if (a instanceof Lock) {
      if (this.#missLock === undefined) return { kind: 'miss', fill: this.#fill(key, stale, ctx, a, false) }
      return this.#missAbove(this.#missLock, a, key, stale, ctx)
    }
    return a.then((r) => this.#afterWait(r, key, stale, ctx))
  }

  /** This process leads the key: ask the gateway and the other instances whether someone else fetches it. */
  async #missAbove (ml: MissLock, lock: Lock<Outcome>, key: string, stale: CacheEntry | undefined, ctx: Ctx): Promise<LookupResult> {
    const purgesBefore = this.#purges
    const g = await ml.acquire(key, stale === undefined)
    if (g.kind === 'entry') {
      // Its fill ran on another clock: whether it started before a purge that
      // came in meanwhile cannot be told by time, so it is not kept then.
      const keep = g.keep && this.#purges === purgesBefore
      // Kept here too, or this process's next request would miss again; in
      // memory only when it can be, since the fetching member wrote the slower tiers.
      if (keep) void this.#adopt(ctx.primary, g.entry, g.from === 'redis')
      lock.release({ entry: g.entry })
      return this.#afterWait({ kind: 'done', value: { entry: g.entry } }, key, stale, ctx)
    }
    if (g.kind === 'lead') lock.onEnd = (r) => { g.done(r.kind === 'done' && 'entry' in r.value ? r.value.entry : undefined) }
    return { kind: 'miss', fill: this.#fill(key, stale, ctx, lock, false) }
  }

  #afterWait (r: Release<Outcome>, key: string, stale: CacheEntry | undefined, ctx: Ctx): LookupResult {
    if (r.kind === 'done') {
      const v = r.value
      // Only a fresh entry answers a waiter: one stale on arrival (Age at or past
      // max-age, max-age=0, no-cache) may not be reused (RFC 9111 §4), so the
      // waiter asks the upstream itself, as nginx's proxy_cache_lock waiters do.
      if ('entry' in v && varyMatches(v.entry, ctx.req.headers) && answersAuth(v.entry, ctx.req.headers) && this.#refuses?.(v.entry) !== true &&
        residentNow(this.#now(), v.entry.meta) < v.entry.meta.freshUntil) return { kind: 'hit', entry: v.entry, xcache: 'HIT' }
      if ('stale' in v && answersAuth(v.stale, ctx.req.headers)) return { kind: 'hit', entry: v.stale, xcache: 'STALE' }
    }
    // uncacheable, another variant, lock timeout or client gone: go upstream alone
    return { kind: 'miss', fill: this.#fill(key, stale, ctx, undefined, false) }
  }

  #fill (key: string, stale: CacheEntry | undefined, ctx: Ctx, lock: Lock<Outcome> | undefined, background: boolean): Fill {
    if (missChannel.hasSubscribers) missChannel.publish({ site: ctx.site.name, background, revalidate: stale !== undefined })
    return new Fill({
      host: this.#host,
      key,
      primary: ctx.primary,
      url: ctx.base,
      site: ctx.site,
      reqHeaders: ctx.req.headers,
      stale,
      noStore: ctx.rd?.noStore === true,
      lock,
      background
    })
  }

  /** Stores under the primary key, or a Vary marker there and the entry under its variant key. */
  #commit (primary: string, entry: CacheEntry): Promise<boolean> {
    const m = entry.meta
    const ttl = m.holdUntil - this.#now()
    if (!(ttl > 0)) return Promise.resolve(false)
    if (m.vary.length === 0) return this.#put(primary, entry, ttl)
    const existing = this.#store.getSync?.(primary)
    const same = existing !== undefined && (existing.meta.flags & F_VARY_MARKER) !== 0 &&
      existing.meta.holdUntil >= m.holdUntil && existing.meta.vary.join() === m.vary.join()
    if (!same) {
      const marker = new CacheEntry(0, [], EMPTY, {
        ...m, flags: F_VARY_MARKER, etag: '', lastModified: '', varyValues: [], tags: [], freshUntil: 0, staleUntil: 0, errorUntil: 0
      })
      void this.#put(primary, marker, ttl)
    }
    return this.#put(variantKey(primary, m.varyValues), entry, ttl)
  }

  #adopt (primary: string, entry: CacheEntry, screen: boolean): Promise<boolean> {
    const store = this.#store as CacheStore & { adopt?: (key: string, e: CacheEntry, ttl: number, screen: boolean) => Promise<boolean> }
    const ttl = entry.meta.holdUntil - this.#now()
    if (store.adopt === undefined || entry.meta.vary.length > 0 || !(ttl > 0)) return this.#commit(primary, entry)
    return store.adopt(primary, entry, ttl, screen).catch((err: unknown) => { this.#storeError('put', err); return false })
  }

  #put (key: string, entry: CacheEntry, ttl: number): Promise<boolean> {
    return this.#store.put(key, entry, ttl).catch((err: unknown) => { this.#storeError('put', err); return false })
  }

  #storeError (op: string, err: unknown): void {
    // Counted and logged, never thrown: a failed cache operation must not fail the response (STYLE §2.12).
    if (storeErrorChannel.hasSubscribers) storeErrorChannel.publish({ tier: this.#store.name, op, error: err })
    this.#log.warn({ err, op }, 'cache store operation failed')
  }
}

function variantKey (primary: string, values: readonly string[]): string {
  return primary + '\u0001' + values.join('\u0001')
}

/** False when the request has Authorization and the entry's response did not allow answering it (RFC 9111 §3.5). */
function answersAuth (e: CacheEntry, h: Headers): boolean {
  return h.authorization === undefined || (e.meta.flags & F_SHARED_AUTH) !== 0
}

function varyMatches (e: CacheEntry, h: Headers): boolean {
  const names = e.meta.vary
  for (let i = 0; i < names.length; i++) if (varyValue(h[names[i]]) !== e.meta.varyValues[i]) return false
  return true
}

/**
 * `now`, but never before the entry's response time. RFC 9111 §4.2.3's
 * resident time (now − response_time) cannot be negative; a clock that reads
 * earlier than the moment the entry was stored is another process's or a
 * coarser clock (the coarse clock lags by up to 100 ms, and a disk or Redis
 * entry may come from another process). Without this, a response stale on
 * arrival (Age equal to max-age) was a HIT with Age 59 on the next request.
 */
function residentNow (now: number, m: { readonly responseTime: number }): number {
  return now > m.responseTime ? now : m.responseTime
}
