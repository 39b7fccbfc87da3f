/**
 * A stored response. Everything a hit needs is computed when the entry is
 * built (STYLE §2.7): the flat header list for `res.writeHead(status, raw)`,
 * and absolute deadlines for fresh / stale-while-revalidate / stale-if-error
 * / storage. A hit compares one number and writes prebuilt headers; only
 * `age` and `x-cache` are filled in per response.
 *
 * The binary format (for the disk and Redis tiers) is:
 *
 *     "LVC1" | u32 headLength | head | u32 bodyLength | body | u32 crc32
 *
 * where the CRC covers every byte before it, so a torn or truncated write is
 * detected and never served. `head` holds the numbers (f64) and
 * length-prefixed UTF-8 strings of the metadata and header list.
 */
import { crc32 } from 'node:zlib'
import { liveryError } from '../errors.ts'

/** Flags in `EntryMeta.flags`. */
export const F_MUST_REVALIDATE = 1
export const F_NO_CACHE = 2
export const F_SOFT_PURGED = 4
export const F_HEURISTIC = 8
/** A vary marker: the entry only lists the `Vary` field names for its primary key. */
export const F_VARY_MARKER = 16
/**
 * The response may answer a request with Authorization: it has `public`,
 * `s-maxage` or `must-revalidate` (RFC 9111 §3.5). Without it, such a
 * request passes rather than get a page stored for someone else.
 */
export const F_SHARED_AUTH = 32

export interface EntryMeta {
  /** Absolute URL (`scheme://host/path?query`) the entry answers; purges match on it. */
  readonly url: string
  /** Name of the site the entry belongs to. */
  readonly site: string
  /** When the request that produced the response was sent upstream (ms since epoch). */
  readonly requestTime: number
  /** When the response headers arrived (ms since epoch). */
  readonly responseTime: number
  /** corrected_initial_age of RFC 9111 §4.2.3, in ms. */
  readonly initialAge: number
  /** Fresh while `now < freshUntil`. */
  readonly freshUntil: number
  /** Servable stale while one background refresh runs, until this time (RFC 5861 + site grace). */
  readonly staleUntil: number
  /** Servable stale when the upstream fails, until this time (RFC 5861 stale-if-error + site grace). */
  readonly errorUntil: number
  /** Kept in storage for conditional revalidation until this time (site keep). */
  readonly holdUntil: number
  /** `F_*` bits. */
  readonly flags: number
  /** Stored validators, '' when absent. */
  readonly etag: string
  readonly lastModified: string
  /** Lowercased field names of the response's `Vary`. */
  readonly vary: readonly string[]
  /** The request's values of those fields when stored ('\u0000' = absent). */
  readonly varyValues: readonly string[]
  /** Surrogate keys from `Surrogate-Key` and `Cache-Tag`. */
  readonly tags: readonly string[]
}

/** Extra wire slots after the stored headers: `age`, value, `x-cache`, value. */
const kTail = 4

export class CacheEntry {
  readonly status: number
  /** Flat `[name, value, …]`, lowercased names, ready for `writeHead`; no `age` / `x-cache`. */
  readonly rawHeaders: readonly string[]
  readonly body: Buffer
  readonly meta: EntryMeta
  /** The tier that produced this object (for hit metrics). Not encoded. */
  readonly tier: string
  // The header list with four spare slots, built once; serve() fills the
  // slots and hands it to writeHead, which copies synchronously.
  #wire: string[] | undefined
  #notModified: string[] | undefined

  constructor (status: number, rawHeaders: readonly string[], body: Buffer, meta: EntryMeta, tier = 'memory') {
    this.status = status
    this.rawHeaders = rawHeaders
    this.body = body
    this.meta = meta
    this.tier = tier
  }

  /** The wire header array with `age` and `x-cache` set. Valid until the next call. */
  wire (age: string, xcache: string): string[] {
    let w = this.#wire
    if (w === undefined) {
      w = withVia(this.rawHeaders).concat('age', '', 'x-cache', '')
      this.#wire = w
    }
    const n = w.length
    w[n - 3] = age
    w[n - 1] = xcache
    return w
  }

  /**
   * Headers of a 304 answered from this entry (RFC 9110 §15.4.5): the fields
   * a 200 would carry that guide caches, plus `age` and `x-cache`.
   */
  notModifiedWire (age: string, xcache: string): string[] {
    let w = this.#notModified
    if (w === undefined) {
      w = []
      const raw = this.rawHeaders
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]
        if (notModifiedFields.has(name) || (name === 'last-modified' && this.meta.etag === '')) w.push(name, raw[i + 1])
      }
      w = withVia(w)
      w.push('age', '', 'x-cache', '')
      this.#notModified = w
    }
    const n = w.length
    w[n - 3] = age
    w[n - 1] = xcache
    return w
  }

  /** The same entry with other metadata (freshening, soft purge). Shares headers and body. */
  withMeta (meta: EntryMeta, rawHeaders: readonly string[] = this.rawHeaders): CacheEntry {
    return new CacheEntry(this.status, rawHeaders, this.body, meta, this.tier)
  }

  withTier (tier: string): CacheEntry {
    return new CacheEntry(this.status, this.rawHeaders, this.body, this.meta, tier)
  }

  /**
   * Bytes this entry costs in memory, for byte-bounded tiers: the body, every
   * string with V8's per-string header, and a fixed part for the objects
   * around them. Counting only the bytes (as before issue 15) charged a 100 B
   * entry about 590 B where it cost about 2.2 KB of RSS, so 64 MB of small
   * entries held 230 MB; test/cache/memory-bound.test.ts keeps this honest.
   */
  get size (): number {
    let n = this.body.length + ENTRY_OVERHEAD + 2 * (this.meta.url.length + STRING_OVERHEAD)
    for (const s of this.rawHeaders) n += s.length + STRING_OVERHEAD
    return n
  }
}

const viaToken = '1.1 livery'
const endsWithUs = /(?:^|,)\s*1\.1 livery\s*$/

/**
 * The stored headers with Via naming this gateway (RFC 9110 §7.6.3), added
 * to the upstream's own Via. Entries stored from a themed page already carry
 * it; it is not added twice.
 */
function withVia (raw: readonly string[]): string[] {
  const out = raw.slice()
  for (let i = 0; i < out.length; i += 2) {
    if (out[i] === 'via') {
      if (!endsWithUs.test(out[i + 1])) out[i + 1] = `${out[i + 1]}, ${viaToken}`
      return out
    }
  }
  out.push('via', viaToken)
  return out
}

/**
 * What a stored entry costs beyond its strings and body, measured with
 * --expose-gc as RSS growth per entry after a full collection (100 B bodies,
 * 6 headers): the entry, meta and Buffer objects, lru-cache's slot, the key,
 * the purge indexes, and the V8 heap's own slack around them.
 */
const ENTRY_OVERHEAD = 1536
/** A V8 string's header and alignment, per header name or value. */
const STRING_OVERHEAD = 32

const notModifiedFields = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary'])

// --- binary format ---------------------------------------------------------

const MAGIC = 0x4c564331 // "LVC1"
const NUMBERS = 10

/**
 * Writes the head into one buffer sized up front: a buffer (and a length
 * buffer) per string made a 60 KB page's head 70 allocations and its
 * encoding cost more than its checksum (issue 15).
 */
class HeadWriter {
  readonly b: Buffer
  o = 0
  constructor (length: number) { this.b = Buffer.allocUnsafe(length) }
  u32 (n: number): void { this.o = this.b.writeUInt32BE(n, this.o) }
  f64 (n: number): void { this.o = this.b.writeDoubleBE(n, this.o) }
  str (s: string): void {
    const n = this.b.write(s, this.o + 4, 'utf8')
    this.b.writeUInt32BE(n, this.o)
    this.o += 4 + n
  }

  strs (a: readonly string[]): void { this.u32(a.length); for (const s of a) this.str(s) }
}

function strsLength (a: readonly string[]): number {
  let n = 4
  for (const s of a) n += 4 + Buffer.byteLength(s, 'utf8')
  return n
}

/** Serialises an entry for the disk and Redis tiers. */
export function encodeEntry (e: CacheEntry): Buffer {
  const { parts, length } = encodeEntryParts(e)
  return Buffer.concat(parts, length)
}

/**
 * `encodeEntry` as a list of buffers whose concatenation is the encoding. The
 * body is one of them, not a copy, so the disk tier can hand the list to
 * `writev` without building the whole file in memory first.
 */
export function encodeEntryParts (e: CacheEntry): { parts: Buffer[], length: number } {
  const m = e.meta
  // "LVC1" | u32 headLength | head | u32 bodyLength, where head is the numbers and the strings.
  const block = 8 * NUMBERS + 4 * 4 + Buffer.byteLength(m.url, 'utf8') + Buffer.byteLength(m.site, 'utf8') +
    Buffer.byteLength(m.etag, 'utf8') + Buffer.byteLength(m.lastModified, 'utf8') +
    strsLength(e.rawHeaders) + strsLength(m.vary) + strsLength(m.varyValues) + strsLength(m.tags)
  const head = new HeadWriter(8 + block + 4)
  head.u32(MAGIC)
  head.u32(block)
  head.f64(e.status); head.f64(m.requestTime); head.f64(m.responseTime); head.f64(m.initialAge); head.f64(m.freshUntil)
  head.f64(m.staleUntil); head.f64(m.errorUntil); head.f64(m.holdUntil); head.f64(m.flags); head.f64(0)
  head.str(m.url)
  head.str(m.site)
  head.str(m.etag)
  head.str(m.lastModified)
  head.strs(e.rawHeaders)
  head.strs(m.vary)
  head.strs(m.varyValues)
  head.strs(m.tags)
  head.u32(e.body.length)
  const tail = Buffer.allocUnsafe(4)
  tail.writeUInt32BE(crc32(e.body, crc32(head.b)))
  return { parts: [head.b, e.body, tail], length: head.b.length + e.body.length + 4 }
}

class Reader {
  o: number
  readonly b: Buffer
  readonly end: number
  constructor (b: Buffer, start: number, end: number) { this.b = b; this.o = start; this.end = end }
  need (n: number): void { if (this.o + n > this.end) throw new RangeError('header block is truncated') }
  u32 (): number { this.need(4); const v = this.b.readUInt32BE(this.o); this.o += 4; return v }
  f64 (): number { this.need(8); const v = this.b.readDoubleBE(this.o); this.o += 8; return v }
  str (): string { const n = this.u32(); this.need(n); const s = this.b.toString('utf8', this.o, this.o + n); this.o += n; return s }
  strs (): string[] { const n = this.u32(); if (n > this.end - this.o) throw new RangeError('bad list length'); const a = new Array<string>(n); for (let i = 0; i < n; i++) a[i] = this.str(); return a }
}

/**
 * Parses an encoded entry. Throws LIVERY_ERR_CACHE_ENTRY_CORRUPT when the
 * bytes are truncated, have another format or fail the checksum. The body is
 * a view into `buf` (no copy).
 */
export function decodeEntry (buf: Buffer, key = '(unknown)', tier = 'memory'): CacheEntry {
  if (buf.length < 16 || buf.readUInt32BE(0) !== MAGIC) throw liveryError('LIVERY_ERR_CACHE_ENTRY_CORRUPT', key, 'not a Livery cache entry')
  const end = buf.length - 4
  if (crc32(buf.subarray(0, end)) !== buf.readUInt32BE(end)) throw liveryError('LIVERY_ERR_CACHE_ENTRY_CORRUPT', key, 'checksum mismatch (torn write?)')
  try {
    const headLength = buf.readUInt32BE(4)
    if (8 + headLength + 4 > end) throw new RangeError('header block runs past the end')
    const r = new Reader(buf, 8, 8 + headLength)
    const v: number[] = []
    for (let i = 0; i < NUMBERS; i++) v.push(r.f64())
    const url = r.str()
    const site = r.str()
    const etag = r.str()
    const lastModified = r.str()
    const rawHeaders = r.strs()
    const vary = r.strs()
    const varyValues = r.strs()
    const tags = r.strs()
    const bodyLength = buf.readUInt32BE(8 + headLength)
    const bodyStart = 8 + headLength + 4
    if (bodyStart + bodyLength !== end) throw new RangeError('body length does not match')
    if (rawHeaders.length % 2 !== 0) throw new RangeError('odd header list')
    const meta: EntryMeta = {
      url, site, requestTime: v[1], responseTime: v[2], initialAge: v[3], freshUntil: v[4], staleUntil: v[5], errorUntil: v[6], holdUntil: v[7], flags: v[8], etag, lastModified, vary, varyValues, tags
    }
    return new CacheEntry(v[0], rawHeaders, buf.subarray(bodyStart, end), meta, tier)
  } catch (err) {
    throw liveryError('LIVERY_ERR_CACHE_ENTRY_CORRUPT', key, err instanceof Error ? err.message : String(err))
  }
}

/**
 * The entry as a soft purge leaves it: stale now, but servable stale while
 * one refresh runs for as long as a tier keeps it (issue 6: soft purge
 * serves stale once, then the fresh page).
 */
export function softPurged (e: CacheEntry, now: number): CacheEntry {
  const m = e.meta
  return e.withMeta({
    ...m,
    freshUntil: Math.min(m.freshUntil, now),
    staleUntil: Math.max(m.staleUntil, m.holdUntil),
    flags: m.flags | F_SOFT_PURGED
  })
}
