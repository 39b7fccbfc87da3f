/**
 * RFC 9111 shared-cache policy, decided once per upstream response. The
 * result is plain numbers (absolute deadlines) in `EntryMeta`, so the hit
 * path compares a clock reading and never parses a header.
 *
 * Every decision is made here from the RFC's text (docs/caching.md lists the
 * defaults and the deliberate departures).
 */
import type { SiteConfig } from '../config/types.ts'
import { CONFLICT, type Directives, deltaSeconds, fieldNames, has, parseAge, parseCacheControl, parseHttpDate, parseSurrogateControl, parseTargeted } from './cache-control.ts'
import { CacheEntry, type EntryMeta, F_HEURISTIC, F_MUST_REVALIDATE, F_NO_CACHE, F_SHARED_AUTH } from './entry.ts'

export type Headers = Readonly<Record<string, string | readonly string[] | undefined>>

/** Status codes cacheable by default, i.e. heuristically (RFC 9110 §15.1). */
const heuristicStatus = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501])
/** Statuses whose semantics this cache implements, for `must-understand` (RFC 9111 §5.2.2.3). */
const understoodStatus = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 451, 501])
/** Hop-by-hop fields (RFC 9110 §7.6.1), plus ours and the tag fields meant only for this cache. */
const neverStored = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'age', 'x-cache', 'content-length', 'surrogate-key', 'cache-tag', 'surrogate-control'
])
/**
 * Fields a 304 does not change in the stored response (RFC 9111 §3.2): the
 * framing fields, and Content-Encoding, which describes the stored bytes
 * themselves (§3.2 allows omitting fields "necessary to assure integrity of
 * the stored response"). Set-Cookie belongs to the one client that got the
 * 304, never to the shared copy.
 */
const notUpdated = new Set(['content-length', 'content-encoding', 'content-range', 'transfer-encoding', 'set-cookie'])

/** Heuristic freshness is capped, as RFC 9111 §4.2.2 suggests caches may. */
export const HEURISTIC_CAP = 24 * 3600 * 1000
const HEURISTIC_FRACTION = 0.1

export interface ResponseInput {
  readonly url: string
  readonly method: string
  readonly reqHeaders: Headers
  readonly status: number
  /** The upstream's own response headers: everything is decided on these. */
  readonly resHeaders: Headers
  /**
   * The headers to store and serve, when they differ from the upstream's (a
   * themed page: Livery's ETag, Content-Type, Content-Length). Never consulted
   * for storability or freshness (issue 11: a synthesised ETag made pages
   * without caching headers storable).
   */
  readonly storedHeaders?: Headers
  readonly requestTime: number
  readonly responseTime: number
  readonly site: SiteConfig
}

export interface StorePlan {
  readonly status: number
  /** Stored headers without `content-length` (set from the body at build time). */
  readonly rawHeaders: readonly string[]
  readonly meta: EntryMeta
  /** The upstream's Content-Length, when it sent one. */
  readonly contentLength: number | undefined
}

export type Verdict = { readonly store: true, readonly plan: StorePlan } | { readonly store: false, readonly reason: string }

function first (v: string | readonly string[] | undefined): string | undefined {
  return v === undefined ? undefined : typeof v === 'string' ? v : v.join(', ')
}

/** Decides whether an upstream response to a GET may be stored and how long it stays useful. */
export function decide (input: ResponseInput): Verdict {
  const { status, resHeaders: rh, reqHeaders: qh, site } = input
  if (input.method !== 'GET') return no('only GET responses are stored')
  if (status < 200 || status === 206 || status === 304) return no(`status ${status} is not a complete response`)
  const reqcc = requestCacheControl(qh)
  if (reqcc.noStore) return no('the request has no-store')
  // RFC 9213 §2.2: the first targeted field on our list with a valid value
  // replaces Cache-Control and Expires for this cache.
  const targeted = targetedDirectives(rh, site)
  const cc = targeted ?? parseCacheControl(rh['cache-control'])
  const expiresField = targeted === undefined ? rh.expires : undefined
  const mustUnderstand = has(cc, 'must-understand')
  if (mustUnderstand && !understoodStatus.has(status)) return no(`must-understand with status ${status}`)
  // must-understand overrides no-store in caches that understand the status (RFC 9111 §5.2.2.3)
  if (has(cc, 'no-store') && !mustUnderstand) return no('the response has no-store')
  if (cc.get('private') === true) return no('the response is private')
  const isPublic = has(cc, 'public')
  const sMaxAge = cc.get('s-maxage')
  if (qh.authorization !== undefined && !isPublic && sMaxAge === undefined && !has(cc, 'must-revalidate')) {
    return no('the request has Authorization and the response does not allow sharing it')
  }
  const varyNames = parseVary(rh.vary)
  if (varyNames.includes('*')) return no('Vary: * never matches')
  const stripped = new Set([...fieldNames(cc, 'private'), ...fieldNames(cc, 'no-cache')])
  if (rh['set-cookie'] !== undefined && !stripped.has('set-cookie')) {
    // Varnish's built-in rule: a cookie is one visitor's, even on a public page.
    if (!site.stripSetCookie) return no('the response sets a cookie (the site\'s stripSetCookie would store it without)')
    stripped.add('set-cookie')
  }
  const explicit = sMaxAge !== undefined || cc.has('max-age') || expiresField !== undefined
  const etag = first(rh.etag) ?? ''
  const lastModified = first(rh['last-modified']) ?? ''
  if (!explicit && !isPublic && !heuristicStatus.has(status)) return no(`status ${status} without explicit freshness`)

  // --- freshness (RFC 9111 §4.2) ---
  const dateValue = parseHttpDate(rh.date)
  const date = Number.isNaN(dateValue) ? input.responseTime : dateValue
  const noCacheArg = cc.get('no-cache')
  const noCache = noCacheArg === true || noCacheArg === CONFLICT
  const sMaxAgeSec = deltaSeconds(cc, 's-maxage')
  const maxAgeSec = deltaSeconds(cc, 'max-age')
  let lifetime = 0
  let heuristic = false
  if (sMaxAge !== undefined) lifetime = sMaxAgeSec === undefined ? 0 : sMaxAgeSec * 1000
  else if (cc.has('max-age')) lifetime = maxAgeSec === undefined ? 0 : maxAgeSec * 1000
  else if (expiresField !== undefined) {
    // Several Expires lines, or one that is not an HTTP-date, mean already expired (RFC 9111 §5.3).
    const expires = parseHttpDate(expiresField)
    lifetime = Number.isNaN(expires) ? 0 : Math.max(0, expires - date)
  } else {
    const lm = parseHttpDate(lastModified)
    // public allows heuristic freshness for any status (RFC 9111 §4.2.2)
    if (!Number.isNaN(lm) && lm < date && (heuristicStatus.has(status) || isPublic)) {
      lifetime = Math.min(HEURISTIC_CAP, (date - lm) * HEURISTIC_FRACTION)
      heuristic = true
    } else if (site.defaultTtl > 0) {
      lifetime = site.defaultTtl
      heuristic = true
    } else if (etag === '' && lastModified === '') {
      return no('no explicit freshness and no validators (set the site\'s defaultTtl to cache such responses)')
    }
  }
  if (noCache) lifetime = 0

  // --- age (RFC 9111 §4.2.3) ---
  const apparentAge = Math.max(0, input.responseTime - date)
  const correctedAgeValue = parseAge(rh.age) * 1000 + Math.max(0, input.responseTime - input.requestTime)
  const initialAge = Math.max(apparentAge, correctedAgeValue)
  const freshUntil = input.responseTime + lifetime - initialAge

  // --- stale windows (RFC 9111 §4.2.4, RFC 5861, site grace and keep) ---
  const mustRevalidate = noCache || has(cc, 'must-revalidate') || has(cc, 'proxy-revalidate')
  const swr = (deltaSeconds(cc, 'stale-while-revalidate') ?? 0) * 1000
  const sie = (deltaSeconds(cc, 'stale-if-error') ?? 0) * 1000
  // s-maxage implies proxy-revalidate (§5.2.2.10): only the origin's own
  // RFC 5861 directives may then allow stale, not our out-of-band grace or
  // staleIfError. Grace serves stale to a client while the origin is fine
  // (§4.2.4 forbids that unless allowed, so it is 0 by default); staleIfError
  // only when the origin has failed ("disconnected" in §4.2.4's words).
  const outOfBand = sMaxAge === undefined
  const staleWindow = mustRevalidate ? 0 : Math.max(swr, outOfBand ? site.grace : 0)
  const errorWindow = mustRevalidate ? 0 : Math.max(sie, outOfBand ? site.staleIfError : 0, staleWindow)
  const staleUntil = freshUntil + staleWindow
  const errorUntil = freshUntil + errorWindow
  const holdUntil = Math.max(staleUntil, errorUntil) + (etag !== '' || lastModified !== '' ? site.keep : 0)
  if (holdUntil <= input.responseTime) return no('stale on arrival with nothing to revalidate (no keep, grace or validators)')

  const sh = input.storedHeaders ?? rh
  // Our own targeted field is consumed here; CDN-Cache-Control is kept for
  // CDNs in front of us (RFC 9213 §3), Surrogate-Control never leaves (neverStored).
  if (site.targetedField !== '') stripped.add(site.targetedField.toLowerCase())
  const rawHeaders = storedHeaders(sh, stripped)
  if (sh.date === undefined) rawHeaders.push('date', new Date(input.responseTime).toUTCString())
  const cl = first(sh['content-length'])
  const meta: EntryMeta = {
    url: input.url,
    site: site.name,
    requestTime: input.requestTime,
    responseTime: input.responseTime,
    initialAge,
    freshUntil,
    staleUntil,
    errorUntil,
    holdUntil,
    // s-maxage carries proxy-revalidate for a shared cache (§5.2.2.10), so a client's max-stale cannot reach past it either.
    flags: (mustRevalidate || sMaxAge !== undefined ? F_MUST_REVALIDATE : 0) | (noCache ? F_NO_CACHE : 0) | (heuristic ? F_HEURISTIC : 0) |
      (isPublic || sMaxAge !== undefined || has(cc, 'must-revalidate') ? F_SHARED_AUTH : 0),
    etag,
    lastModified,
    vary: varyNames,
    varyValues: varyNames.map((n) => varyValue(qh[n])),
    tags: parseTags(rh)
  }
  return {
    store: true,
    plan: { status, rawHeaders, meta, contentLength: cl !== undefined && /^[0-9]+$/.test(cl) ? Number(cl) : undefined }
  }
}

/**
 * The directives of the first targeted field with a valid, non-empty value,
 * in this order: the site's own field (Livery-Cache-Control), Surrogate-Control
 * (Varnish/Fastly, Fastly's precedence), CDN-Cache-Control (RFC 9213 §3).
 */
function targetedDirectives (rh: Headers, site: SiteConfig): Directives | undefined {
  if (site.targetedField !== '') {
    const own = parseTargeted(rh[site.targetedField.toLowerCase()])
    if (own !== undefined) return own
  }
  return parseSurrogateControl(rh['surrogate-control']) ?? parseTargeted(rh['cdn-cache-control'])
}

function no (reason: string): Verdict {
  return { store: false, reason }
}

/**
 * Builds the entry once the body is in. The caller must say whether the body
 * arrived completely; a body whose length differs from Content-Length, or
 * that did not complete, is never stored. Returns a reason when refused.
 */
export function buildEntry (plan: StorePlan, body: Buffer, complete: boolean): CacheEntry | string {
  if (!complete) return 'the body did not complete'
  if (plan.contentLength !== undefined && plan.contentLength !== body.length) {
    return `the body has ${body.length} bytes but Content-Length said ${plan.contentLength}`
  }
  let raw = plan.status === 204 ? plan.rawHeaders : plan.rawHeaders.concat('content-length', String(body.length))
  // A complete stored 200 answers single byte ranges (HttpCache.serve); say so, as Varnish does.
  if (plan.status === 200 && !raw.includes('accept-ranges')) raw = raw.concat('accept-ranges', 'bytes')
  return new CacheEntry(plan.status, raw, body, plan.meta)
}

/** Lowercased, trimmed names from `Vary`, without duplicates. */
export function parseVary (v: string | readonly string[] | undefined): string[] {
  if (v === undefined) return []
  const s = typeof v === 'string' ? v : v.join(',')
  const out: string[] = []
  for (const part of s.split(',')) {
    const n = part.trim().toLowerCase()
    if (n.length > 0 && !out.includes(n)) out.push(n)
  }
  return out
}

/** A request field value normalised for Vary matching (RFC 9111 §4.1); '\u0000' = absent. */
export function varyValue (v: string | readonly string[] | undefined): string {
  if (v === undefined) return '\u0000'
  const s = typeof v === 'string' ? v : v.join(', ')
  return s.trim().replace(/\s*,\s*/g, ', ')
}

function parseTags (rh: Headers): string[] {
  const out: string[] = []
  const sk = first(rh['surrogate-key'])
  if (sk !== undefined) for (const t of sk.split(/\s+/)) if (t.length > 0 && !out.includes(t)) out.push(t)
  const ct = first(rh['cache-tag'])
  if (ct !== undefined) for (const t of ct.split(',')) { const s = t.trim(); if (s.length > 0 && !out.includes(s)) out.push(s) }
  return out
}

/** The flat header list to store: hop-by-hop fields, fields named in Connection and `stripped` removed. */
function storedHeaders (rh: Headers, stripped: ReadonlySet<string>): string[] {
  const connection = new Set(parseVary(rh.connection))
  const out: string[] = []
  for (const name of Object.keys(rh)) {
    const v = rh[name]
    if (v === undefined) continue
    const n = name.toLowerCase()
    if (neverStored.has(n) || connection.has(n) || stripped.has(n)) continue
    if (typeof v === 'string') out.push(n, v)
    else for (const s of v) out.push(n, s)
  }
  return out
}

// --- requests -----------------------------------------------------------------

export interface RequestDirectives {
  readonly noCache: boolean
  readonly noStore: boolean
  readonly onlyIfCached: boolean
  /** ms, or undefined */
  readonly maxAge: number | undefined
  /** ms; Infinity for a bare `max-stale` */
  readonly maxStale: number | undefined
  readonly minFresh: number | undefined
}

const noDirectives: RequestDirectives = { noCache: false, noStore: false, onlyIfCached: false, maxAge: undefined, maxStale: undefined, minFresh: undefined }

/** Request Cache-Control (RFC 9111 §5.2.1), with `Pragma: no-cache` when Cache-Control is absent (§5.4). */
export function requestCacheControl (h: Headers): RequestDirectives {
  const raw = h['cache-control']
  if (raw === undefined) {
    const p = first(h.pragma)
    return p !== undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(p) ? { ...noDirectives, noCache: true } : noDirectives
  }
  const cc: Directives = parseCacheControl(raw)
  const ms = (name: string): number | undefined => { const s = deltaSeconds(cc, name); return s === undefined ? undefined : s * 1000 }
  const ms0 = (name: string): number | undefined => cc.get(name) === CONFLICT ? 0 : ms(name)
  const ms0Age = cc.has('max-age') ? (ms0('max-age') ?? 0) : undefined
  return {
    noCache: has(cc, 'no-cache'),
    noStore: has(cc, 'no-store'),
    onlyIfCached: has(cc, 'only-if-cached'),
    maxAge: ms0Age,
    maxStale: cc.has('max-stale') ? (cc.get('max-stale') === true ? Infinity : ms('max-stale')) : undefined,
    minFresh: ms('min-fresh')
  }
}

// --- age, validation ------------------------------------------------------------

/** current_age of RFC 9111 §4.2.3, in ms. */
export function currentAge (m: EntryMeta, now: number): number {
  return m.initialAge + Math.max(0, now - m.responseTime)
}

/** Validators to send upstream when revalidating `entry` (RFC 9111 §4.3.1). */
export function conditionalHeaders (entry: CacheEntry): Record<string, string> | undefined {
  const m = entry.meta
  if (m.etag === '' && m.lastModified === '') return undefined
  const out: Record<string, string> = {}
  if (m.etag !== '') out['if-none-match'] = m.etag
  if (m.lastModified !== '') out['if-modified-since'] = m.lastModified
  return out
}

function opaque (tag: string): string {
  const t = tag.trim()
  return t.startsWith('W/') ? t.slice(2) : t
}

/**
 * Whether a client's conditional GET/HEAD is answered with 304 from `entry`
 * (RFC 9110 §13.1.2–13.1.3, RFC 9111 §4.3.2): If-None-Match, weakly
 * compared, takes precedence; If-Modified-Since is only read without it,
 * against Last-Modified, else Date, else the time the response arrived.
 */
export function notModified (entry: CacheEntry, h: Headers): boolean {
  const inm = first(h['if-none-match'])
  if (inm !== undefined) {
    if (inm.trim() === '*') return true
    // The ETag the client saw, which for a themed page is Livery's, not the upstream's (meta.etag).
    const seen = headerOf(entry, 'etag')
    if (seen === undefined) return false
    const mine = opaque(seen)
    for (const t of inm.split(',')) if (opaque(t) === mine) return true
    return false
  }
  const ims = parseHttpDate(first(h['if-modified-since']))
  if (Number.isNaN(ims)) return false
  let lm = parseHttpDate(headerOf(entry, 'last-modified'))
  if (Number.isNaN(lm)) lm = parseHttpDate(headerOf(entry, 'date'))
  if (Number.isNaN(lm)) lm = entry.meta.responseTime
  return lm <= ims
}

export function headerOf (entry: CacheEntry, name: string): string | undefined {
  const raw = entry.rawHeaders
  for (let i = 0; i < raw.length; i += 2) if (raw[i] === name) return raw[i + 1]
  return undefined
}

/**
 * Whether a 304 selects the stored response for update (RFC 9111 §4.3.4):
 * the same strong ETag, the same weak ETag, the same Last-Modified, or
 * neither carries a validator.
 */
export function selects (entry: CacheEntry, rh: Headers): boolean {
  const etag = first(rh.etag)
  const m = entry.meta
  if (etag !== undefined) return m.etag !== '' && opaque(m.etag) === opaque(etag)
  const lm = first(rh['last-modified'])
  if (lm !== undefined) return m.lastModified === lm
  return m.etag === '' && m.lastModified === ''
}

/**
 * Freshens a stored response with a 304 (RFC 9111 §4.3.4, §3.2): the 304's
 * fields replace the stored ones (except those describing the body) and
 * freshness is recomputed from the merged headers. `storable` is false
 * when the merged response may no longer be stored (serve it once).
 */
export function freshen (entry: CacheEntry, input: Omit<ResponseInput, 'status' | 'url' | 'method'>): { readonly entry: CacheEntry, readonly storable: boolean } | undefined {
  const merged: Record<string, string | string[]> = {}
  const raw = entry.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const prev = merged[raw[i]]
    if (prev === undefined) merged[raw[i]] = raw[i + 1]
    else if (typeof prev === 'string') merged[raw[i]] = [prev, raw[i + 1]]
    else prev.push(raw[i + 1])
  }
  const connection = new Set(parseVary(input.resHeaders.connection))
  // A themed entry serves Livery's ETag for its own bytes; the upstream's validates the upstream's.
  const ownEtag = (merged.etag ?? '') !== entry.meta.etag
  for (const name of Object.keys(input.resHeaders)) {
    const v = input.resHeaders[name]
    const n = name.toLowerCase()
    if (v === undefined || notUpdated.has(n) || neverStored.has(n) || connection.has(n) || (ownEtag && n === 'etag')) continue
    merged[n] = typeof v === 'string' ? v : [...v]
  }
  // a 304 without Age means the age is 0 at its response time
  if (input.resHeaders.age !== undefined) merged.age = first(input.resHeaders.age) ?? '0'
  const v = decide({ ...input, url: entry.meta.url, method: 'GET', status: entry.status, resHeaders: merged })
  if (!v.store) {
    // Not storable any more (the 304 said no-store, private, …): the client
    // that asked still gets the body with the updated headers, once.
    const once: string[] = []
    for (const n of Object.keys(merged)) {
      if (n === 'age') continue
      const val = merged[n]
      if (typeof val === 'string') once.push(n, val)
      else for (const x of val) once.push(n, x)
    }
    return { entry: entry.withMeta(entry.meta, once), storable: false }
  }
  // tag fields are not stored, so a 304 without them keeps the old tags
  const meta = v.plan.meta.tags.length === 0 ? { ...v.plan.meta, tags: entry.meta.tags } : v.plan.meta
  const e = buildEntry({ ...v.plan, meta, contentLength: undefined }, entry.body, true)
  return typeof e === 'string' ? undefined : { entry: e, storable: true }
}
