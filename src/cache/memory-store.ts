/**
 * The memory tier: lru-cache bounded in bytes (`maxSize`) with a per-entry
 * limit (`maxEntrySize`). It holds decoded `CacheEntry` objects, so a memory
 * hit never decodes or copies. URL and tag indexes make the purges that
 * unsafe methods and tag purges trigger O(matches) instead of a scan.
 */
import { channel } from 'node:diagnostics_channel'
import { LRUCache } from 'lru-cache'
import { liveryError } from '../errors.ts'
import { type CacheEntry, softPurged } from './entry.ts'
import { type CacheStore, type PurgeOptions, type PurgeSelector, type TierStats, matchesSelector } from './store.ts'

const evictionChannel = channel('livery:cache:eviction')

export interface MemoryStoreOptions {
  /** Byte budget of the tier. */
  readonly maxSize: number
  /** Largest single entry in bytes. @default maxSize / 8 */
  readonly maxEntrySize?: number
  /** Tier name in metrics. @default 'memory' */
  readonly name?: string
}

export class MemoryStore implements CacheStore {
  readonly name: string
  readonly syncComplete = true
  readonly #lru: LRUCache<string, CacheEntry>
  readonly #byUrl = new Map<string, Set<string>>()
  readonly #byTag = new Map<string, Set<string>>()
  readonly #maxSize: number
  #evictions = 0
  #closed = false

  constructor (opts: MemoryStoreOptions) {
    if (!Number.isSafeInteger(opts.maxSize) || opts.maxSize <= 0) {
      throw new TypeError(`cache.memory.maxSize must be a positive number of bytes, got ${String(opts.maxSize)}`)
    }
    const maxEntrySize = opts.maxEntrySize ?? Math.floor(opts.maxSize / 8)
    if (!Number.isSafeInteger(maxEntrySize) || maxEntrySize <= 0 || maxEntrySize > opts.maxSize) {
      throw new TypeError(`cache.memory.maxEntrySize must be a positive number of bytes no larger than maxSize (${opts.maxSize}), got ${String(maxEntrySize)}`)
    }
    this.name = opts.name ?? 'memory'
    this.#maxSize = opts.maxSize
    this.#lru = new LRUCache<string, CacheEntry>({
      maxSize: opts.maxSize,
      maxEntrySize,
      sizeCalculation: (e, key) => e.size + key.length,
      // Livery checks freshness itself; lru-cache's TTL only bounds storage
      // time. With the default ttlResolution (1 ms) lru-cache re-arms a timer
      // after each clock read, about every millisecond under load (issue 15).
      ttlResolution: 0,
      dispose: (e, key, reason) => {
        this.#unindex(key, e)
        if (reason === 'evict') {
          this.#evictions++
          if (evictionChannel.hasSubscribers) evictionChannel.publish({ tier: this.name, bytes: e.size })
        }
      }
    })
  }

  getSync (key: string): CacheEntry | undefined {
    return this.#lru.get(key)
  }

  async get (key: string): Promise<CacheEntry | undefined> {
    this.#check()
    return this.#lru.get(key)
  }

  async put (key: string, entry: CacheEntry, ttlMs: number): Promise<boolean> {
    this.#check()
    return this.#set(key, entry.tier === this.name ? entry : entry.withTier(this.name), ttlMs)
  }

  async delete (key: string): Promise<boolean> {
    this.#check()
    return this.#lru.delete(key)
  }

  async * keys (): AsyncIterable<string> {
    this.#check()
    for (const k of [...this.#lru.keys()]) yield k
  }

  async purge (sel: PurgeSelector, opts: PurgeOptions = {}): Promise<number> {
    this.#check()
    const keys = this.#select(sel)
    const now = opts.now ?? Date.now()
    let n = 0
    for (const key of keys) {
      const e = this.#lru.peek(key)
      if (e === undefined) continue
      n++
      if (opts.soft === true) {
        const ttl = this.#lru.getRemainingTTL(key)
        this.#set(key, softPurged(e, now), Number.isFinite(ttl) && ttl > 0 ? ttl : 1)
      } else {
        this.#lru.delete(key)
      }
    }
    return n
  }

  async clear (): Promise<void> {
    this.#check()
    this.#lru.clear()
  }

  stats (): Readonly<Record<string, TierStats>> {
    return { [this.name]: { entries: this.#lru.size, bytes: this.#lru.calculatedSize, maxBytes: this.#maxSize, evictions: this.#evictions } }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#lru.clear()
  }

  async destroy (): Promise<void> {
    await this.close()
  }

  #check (): void {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', `cache tier ${this.name}`)
  }

  #set (key: string, entry: CacheEntry, ttlMs: number): boolean {
    if (!(ttlMs > 0)) return false
    this.#lru.set(key, entry, { ttl: Math.ceil(ttlMs) })
    // lru-cache drops an entry larger than maxEntrySize without telling us.
    if (this.#lru.peek(key) !== entry) return false
    addIndex(this.#byUrl, entry.meta.url, key)
    for (const t of entry.meta.tags) addIndex(this.#byTag, t, key)
    return true
  }

  #unindex (key: string, e: CacheEntry): void {
    removeIndex(this.#byUrl, e.meta.url, key)
    for (const t of e.meta.tags) removeIndex(this.#byTag, t, key)
  }

  #select (sel: PurgeSelector): string[] {
    const scan = sel.all === true || (sel.prefixes !== undefined && sel.prefixes.length > 0) || (sel.site !== undefined && sel.site !== '')
    if (scan) {
      const out: string[] = []
      for (const [k, e] of this.#lru.entries()) if (matchesSelector(e, sel)) out.push(k)
      return out
    }
    const out = new Set<string>()
    for (const u of sel.urls ?? []) for (const k of this.#byUrl.get(u) ?? []) out.add(k)
    for (const t of sel.tags ?? []) for (const k of this.#byTag.get(t) ?? []) out.add(k)
    return [...out]
  }
}

function addIndex (index: Map<string, Set<string>>, name: string, key: string): void {
  let s = index.get(name)
  if (s === undefined) { s = new Set(); index.set(name, s) }
  s.add(key)
}

function removeIndex (index: Map<string, Set<string>>, name: string, key: string): void {
  const s = index.get(name)
  if (s === undefined) return
  s.delete(key)
  if (s.size === 0) index.delete(name)
}
