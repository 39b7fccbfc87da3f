/**
 * A `Fill` is the handle of the one request that goes upstream for a key:
 * the leader of a coalesced miss, a background refresh of a stale entry, or
 * a request going alone (hit-for-miss, lock timeout). The proxy does the
 * I/O; the fill decides (STYLE §2.1):
 *
 *   1. send `fill.upstreamMethod` with `fill.upstreamHeaders(req.headers)`;
 *   2. on response headers call `fill.response(status, headers)`:
 *      - `store`: stream to the client and collect at most `maxBytes` of
 *        body; then `fill.finish(body, complete)` (complete = the body ended
 *        normally; pass false if it overflowed `maxBytes` or broke off);
 *      - `pass`: forward as usual, nothing more to do;
 *      - `serve`: discard the upstream body and `cache.serve(entry, …)`;
 *   3. if the upstream fails before headers, `fill.fail(err)` returns a stale
 *      entry to serve instead of an error page, when one is allowed.
 *
 * Waiters are released as soon as the outcome is known: at header time for
 * uncacheable responses, after `finish` for stored ones.
 */
import type { SiteConfig } from '../config/types.ts'
import type { CacheEntry } from './entry.ts'
import type { Lock } from './coalesce.ts'
import { type Headers, type StorePlan, buildEntry, conditionalHeaders, decide, freshen, selects } from './policy.ts'

export type Outcome =
  | { readonly entry: CacheEntry }
  | { readonly stale: CacheEntry }
  | { readonly pass: true }

export type FillDecision =
  | { readonly action: 'store', readonly maxBytes: number }
  | { readonly action: 'pass', readonly reason: string }
  | { readonly action: 'serve', readonly entry: CacheEntry, readonly xcache: 'REVALIDATED' | 'STALE' }

/** What a fill needs from its cache. */
export interface FillHost {
  now (): number
  readonly maxEntrySize: number
  /**
   * Stores under the primary key (and Vary marker); the memory write is done
   * when this returns. `lock`: the fill's waiting-list lock, which knows the
   * purges entered while this fill ran (their copies are not stored).
   */
  commit (primary: string, entry: CacheEntry, lock?: Lock<Outcome>): Promise<boolean>
  remove (key: string): Promise<void>
  uncacheable (key: string, reason: string): void
  cacheable (key: string): void
}

export interface FillInit {
  readonly host: FillHost
  readonly key: string
  readonly primary: string
  readonly url: string
  readonly site: SiteConfig
  readonly reqHeaders: Headers
  readonly stale: CacheEntry | undefined
  /** The request had Cache-Control: no-store: never store what it fetches. */
  readonly noStore: boolean
  readonly lock: Lock<Outcome> | undefined
  readonly background: boolean
}

const kPass: Outcome = { pass: true }
/** Client validators replaced by ours: a fill must fetch a storable full response. */
const clientValidators = new Set(['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range'])
const serverErrors = new Set([500, 502, 503, 504])

/**
 * Most readings that slack (the response head in front of a body that came in
 * one socket read) may pin in memory with a stored body instead of a copy.
 */
const maxSlack = 4096

/**
 * The body as one Buffer. A body that arrived in one chunk is kept as it is
 * (a view of the socket's read buffer) when that buffer holds little else:
 * Buffer.concat always copies, and on a cold miss of a 60 KB page the copy
 * into fresh memory was 6-7% of the request (issue 15). A chunk that is a
 * small part of a larger buffer is copied, so a 100-byte body never keeps a
 * 64 KB read buffer alive.
 */
function joined (chunks: readonly Buffer[]): Buffer {
  if (chunks.length === 1) {
    const c = chunks[0]
    if (c.buffer.byteLength - c.byteLength <= maxSlack) return c
  }
  return Buffer.concat(chunks as Buffer[])
}

function hasClientValidator (h: Headers): boolean {
  return h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-match'] !== undefined ||
    h['if-unmodified-since'] !== undefined || h['if-range'] !== undefined || h.range !== undefined
}

export class Fill {
  /** The coalescing key (primary, or the Vary variant's key). */
  readonly key: string
  /** The stored entry being revalidated, if any. */
  readonly stale: CacheEntry | undefined
  /** Validators to send upstream (already merged by `upstreamHeaders`). */
  readonly conditionalHeaders: Readonly<Record<string, string>> | undefined
  /** True for a refresh that runs after a stale entry was served. */
  readonly background: boolean
  /** Whether other requests wait on this fill. */
  readonly coalesced: boolean
  /** HEAD misses fetch GET so the entry can be stored; Node drops the body for HEAD clients. */
  readonly upstreamMethod = 'GET'
  readonly requestTime: number
  readonly #init: FillInit
  #plan: StorePlan | undefined
  #done = false

  constructor (init: FillInit) {
    this.#init = init
    this.key = init.key
    this.stale = init.stale
    this.background = init.background
    this.coalesced = init.lock !== undefined
    this.conditionalHeaders = init.stale === undefined ? undefined : conditionalHeaders(init.stale)
    this.requestTime = init.host.now()
  }

  /**
   * The request headers to send upstream: client validators and Range
   * dropped, ours added. `incoming` itself when there is nothing to drop or
   * add (the proxy copies the headers it sends anyway, and one copy per miss
   * is enough); callers must not modify the result.
   */
  upstreamHeaders<H extends Headers> (incoming: H): H | Record<string, string | string[]> {
    if (this.conditionalHeaders === undefined && !hasClientValidator(incoming)) return incoming
    const out: Record<string, string | string[]> = {}
    for (const k of Object.keys(incoming)) {
      const v = incoming[k]
      if (v === undefined || clientValidators.has(k)) continue
      out[k] = typeof v === 'string' ? v : [...v]
    }
    if (this.conditionalHeaders !== undefined) Object.assign(out, this.conditionalHeaders)
    return out
  }

  /**
   * Upstream response headers arrived: decide what to do with the response.
   * `stored` are the headers to store instead of the upstream's (a themed
   * page); the decision is always made on the upstream's `headers`.
   */
  response (status: number, headers: Headers, stored?: Headers): FillDecision {
    if (this.#done) return { action: 'pass', reason: 'fill already finished' }
    const { host, stale } = this.#init
    const now = host.now()
    if (status === 304 && stale !== undefined) {
      this.#done = true
      if (!selects(stale, headers)) {
        // RFC 9111 §4.3.4: no stored response is selected, so none is updated;
        // the body we hold is the only one we have, and the next request refetches.
        void host.remove(this.key)
        this.#release(kPass)
        return { action: 'serve', entry: stale, xcache: 'REVALIDATED' }
      }
      const fresh = freshen(stale, { reqHeaders: this.#init.reqHeaders, resHeaders: headers, requestTime: this.requestTime, responseTime: now, site: this.#init.site })
      if (fresh === undefined || !fresh.storable) {
        void host.remove(this.key)
        this.#release(kPass)
        return { action: 'serve', entry: fresh?.entry ?? stale, xcache: 'REVALIDATED' }
      }
      const stored = host.commit(this.#init.primary, fresh.entry, this.#init.lock)
      this.#release({ entry: fresh.entry })
      void stored
      return { action: 'serve', entry: fresh.entry, xcache: 'REVALIDATED' }
    }
    if (stale !== undefined && serverErrors.has(status) && now < stale.meta.errorUntil) {
      this.#done = true
      this.#release({ stale })
      return { action: 'serve', entry: stale, xcache: 'STALE' }
    }
    if (this.#init.noStore) return this.#pass('the request has no-store', false)
    const v = decide({ url: this.#init.url, method: 'GET', reqHeaders: this.#init.reqHeaders, status, resHeaders: headers, storedHeaders: stored, requestTime: this.requestTime, responseTime: now, site: this.#init.site })
    if (!v.store) return this.#pass(v.reason, true)
    if (v.plan.contentLength !== undefined && v.plan.contentLength > host.maxEntrySize) {
      return this.#pass(`Content-Length ${v.plan.contentLength} is larger than maxEntrySize ${host.maxEntrySize}`, true)
    }
    this.#plan = v.plan
    return { action: 'store', maxBytes: host.maxEntrySize }
  }

  /**
   * The body is in. `complete` must be true only when it ended normally and
   * fit within `maxBytes`; a body shorter or longer than Content-Length is
   * refused here. Resolves the stored entry, or undefined.
   */
  async finish (body: Buffer | readonly Buffer[], complete: boolean): Promise<CacheEntry | undefined> {
    const plan = this.#plan
    if (this.#done || plan === undefined) return undefined
    this.#done = true
    const buf = Buffer.isBuffer(body) ? body : joined(body)
    if (buf.length > this.#init.host.maxEntrySize) {
      this.#init.host.uncacheable(this.key, 'larger than maxEntrySize')
      this.#release(kPass)
      return undefined
    }
    const e = buildEntry(plan, buf, complete)
    if (typeof e === 'string') {
      this.#release(kPass)
      return undefined
    }
    const stored = this.#init.host.commit(this.#init.primary, e, this.#init.lock)
    this.#release({ entry: e })
    if (await stored) {
      this.#init.host.cacheable(this.key)
      return e
    }
    return undefined
  }

  /** The upstream failed. Returns a stale entry to serve instead (stale-if-error / grace), if allowed. */
  fail (_err?: unknown): CacheEntry | undefined {
    if (this.#done) return undefined
    this.#done = true
    const stale = this.#init.stale
    if (stale !== undefined && this.#init.host.now() < stale.meta.errorUntil) {
      this.#release({ stale })
      return stale
    }
    this.#release(kPass)
    return undefined
  }

  #pass (reason: string, remember: boolean): FillDecision {
    this.#done = true
    if (remember) this.#init.host.uncacheable(this.key, reason)
    this.#release(kPass)
    return { action: 'pass', reason }
  }

  #release (o: Outcome): void {
    this.#init.lock?.release(o)
  }
}
