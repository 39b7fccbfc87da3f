/**
 * The tier interface (STYLE §2.2). Memory, disk and Redis tiers, and the
 * tiered store that chains them, all implement it and all pass
 * `test/cache/store-conformance.ts`.
 *
 * Keys are opaque strings built by HttpCache. Entries are `CacheEntry`
 * objects; tiers that persist use `encodeEntry` / `decodeEntry`. Purges
 * select on the entry's metadata (url, site, tags), never on the key,
 * because a key also carries the theme version and Vary values.
 */
import type { CacheEntry } from './entry.ts'

/** What a purge selects; an entry matching any member is affected. */
export interface PurgeSelector {
  /** Absolute URLs (`scheme://host/path?query`), exact match on `meta.url`. */
  readonly urls?: readonly string[]
  /** Prefixes of `meta.url`. */
  readonly prefixes?: readonly string[]
  /** Surrogate keys (`Surrogate-Key` / `Cache-Tag`). */
  readonly tags?: readonly string[]
  /** Site name. */
  readonly site?: string
  /** Everything. */
  readonly all?: boolean
}

export interface PurgeOptions {
  /** Mark entries stale (served while one refresh runs) instead of deleting them. */
  readonly soft?: boolean
  /** Clock for soft purges. @default Date.now */
  readonly now?: number
}

export interface TierStats {
  readonly entries: number
  readonly bytes: number
  readonly maxBytes: number
  readonly evictions: number
  /** Bytes of entries that left the tier and wait for the garbage collector (memory tier). */
  readonly unreclaimed?: number
}

export interface CacheStore {
  /** Tier name used in metrics (`memory`, `disk`, `redis`, `tiered`). */
  readonly name: string
  /**
   * True when `getSync` answers authoritatively (a memory-only store): an
   * undefined result is then a miss and `get` need not be called.
   */
  readonly syncComplete: boolean
  /** Synchronous read of what is already in process memory. */
  getSync? (key: string): CacheEntry | undefined
  get (key: string): Promise<CacheEntry | undefined>
  /**
   * Stores `entry` for `ttlMs` (how long to keep it: freshness + stale windows
   * + keep). Resolves false when the tier refused it (too large, ttl <= 0);
   * a refused or failed write never throws into the request path.
   */
  put (key: string, entry: CacheEntry, ttlMs: number): Promise<boolean>
  delete (key: string): Promise<boolean>
  /** Every key with its entry's metadata-bearing object, for purge and inspection. */
  keys (): AsyncIterable<string>
  /** Deletes (or soft-purges) matching entries; resolves the count affected. */
  purge (selector: PurgeSelector, opts?: PurgeOptions): Promise<number>
  clear (): Promise<void>
  stats (): Readonly<Record<string, TierStats>>
  close (): Promise<void>
  destroy (err?: Error): Promise<void>
}

/** True when `entry` matches `sel`; tiers without indexes use it to scan. */
export function matchesSelector (entry: CacheEntry, sel: PurgeSelector): boolean {
  return matchesMeta(entry.meta, sel)
}

/** The same test on the metadata alone (the disk tier keeps it in its index). */
export function matchesMeta (m: { readonly url: string, readonly site: string, readonly tags: readonly string[] }, sel: PurgeSelector): boolean {
  if (sel.all === true) return true
  if (sel.site !== undefined && sel.site !== '' && m.site === sel.site) return true
  if (sel.urls !== undefined && sel.urls.includes(m.url)) return true
  if (sel.prefixes !== undefined) {
    for (const p of sel.prefixes) if (m.url.startsWith(p)) return true
  }
  if (sel.tags !== undefined && m.tags.length > 0) {
    for (const t of sel.tags) if (m.tags.includes(t)) return true
  }
  return false
}
