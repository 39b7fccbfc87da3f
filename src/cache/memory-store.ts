/**
 * The memory tier: lru-cache bounded in bytes (`maxSize`) with a per-entry
 * limit (`maxEntrySize`). It holds decoded `CacheEntry` objects, so a memory
 * hit never decodes or copies. URL and tag indexes make the purges that
 * unsafe methods and tag purges trigger O(matches) instead of a scan.
 *
 * Eviction runs in bounded steps (issue 15, item 8): a put evicts at most
 * `EVICTIONS_PER_STEP` entries before it is stored, and when that does not
 * make room, the tier may hold up to `maxEntrySize` bytes over `maxSize`
 * while further steps of the same size run on later turns of the event loop
 * (`setImmediate`). A put that would go past `maxSize + maxEntrySize` is
 * refused. lru-cache's own eviction evicts until a new entry fits, in one
 * call: replacing 115k small entries with 1 MB ones stalled the event loop
 * for 1.5 s.
 *
 * Bodies that left the tier still count until V8 frees them. A Buffer's
 * memory lives outside V8's heap, and V8 frees an evicted body only at its
 * next full collection, which it starts once external memory grew by about
 * 64 MB: under a cold-miss fill of a full 256 MB tier, 46-58 MB of evicted
 * bodies were waiting at any moment, on top of the live ones (glibc then
 * keeps that high-water mark for reuse). So a body of 4 KB or more that
 * leaves the tier is watched with a FinalizationRegistry, its bytes count as
 * `unreclaimed` until V8 collects it, and the tier evicts to keep live plus
 * unreclaimed bytes within `maxSize`: RSS follows `maxSize`, not maxSize plus
 * V8's slack. What is counted is capped at a quarter of `maxSize`, so that a
 * small tier under churn keeps serving (V8's slack does not shrink with the
 * tier) rather than evicting everything while it waits for a collection.
 * Smaller bodies share Node's 8 KB buffer pool and die in bulk; they are
 * not watched. Nothing forces a collection (issue 15, item 1).
 *
 * Metrics (node:diagnostics_channel):
 * - `livery:cache:eviction` `{ tier, bytes }` — an entry evicted for room.
 * - `livery:cache:write_dropped` `{ tier, reason: 'evicting' }` — a put
 *   refused at the hard bound.
 * - `livery:cache:eviction_step` `{ tier, evicted, bytes, maxBytes, pending }`
 *   — a step of eviction ran (`pending`: more steps are scheduled).
 */
import { channel } from 'node:diagnostics_channel'
import { LRUCache } from 'lru-cache'
import { liveryError } from '../errors.ts'
import { type CacheEntry, softPurged } from './entry.ts'
import { type CacheStore, type PurgeOptions, type PurgeSelector, type TierStats, matchesSelector } from './store.ts'

const evictionChannel = channel('livery:cache:eviction')
const stepChannel = channel('livery:cache:eviction_step')
const writeDroppedChannel = channel('livery:cache:write_dropped')

/** Bodies at least this large own their memory (smaller ones come from Node's shared 8 KB pool). */
const WATCHED_BODY = 4096

/** Entries one step of eviction may remove: about a millisecond of work. */
export const EVICTIONS_PER_STEP = 256

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
  readonly #maxEntrySize: number
  #evictions = 0
  #closed = false
  #drain: NodeJS.Immediate | undefined
  /** Bytes of bodies that left the tier and that V8 has not freed yet. */
  #unreclaimed = 0
  /** The most of #unreclaimed counted against maxSize. */
  readonly #unreclaimedCap: number
  /** The body memory the entry being stored keeps: replacing an entry with one sharing its body frees nothing. */
  #keep: ArrayBufferLike | undefined
  readonly #watched = new WeakSet<ArrayBufferLike>()
  readonly #freed = new FinalizationRegistry<number>(bytes => { this.#unreclaimed -= bytes })

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
    this.#maxEntrySize = maxEntrySize
    this.#unreclaimedCap = Math.floor(opts.maxSize / 4)
    this.#lru = new LRUCache<string, CacheEntry>({
      // The hard bound; #set keeps below it, so lru-cache never evicts by itself.
      maxSize: opts.maxSize + maxEntrySize,
      maxEntrySize,
      sizeCalculation: (e, key) => e.size + key.length,
      // Livery checks freshness itself; lru-cache's TTL only bounds storage
      // time. With the default ttlResolution (1 ms) lru-cache re-arms a timer
      // after each clock read, about every millisecond under load (issue 15).
      ttlResolution: 0,
      dispose: (e, key, reason) => {
        this.#unindex(key, e)
        this.#watch(e.body)
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
    return { [this.name]: { entries: this.#lru.size, bytes: this.#lru.calculatedSize, maxBytes: this.#maxSize, evictions: this.#evictions, unreclaimed: this.#unreclaimed } }
  }

  /** True while eviction steps are scheduled (the tier is above maxSize). */
  get evicting (): boolean {
    return this.#drain !== undefined
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#drain !== undefined) { clearImmediate(this.#drain); this.#drain = undefined }
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
    const size = entry.size + key.length
    if (size > this.#maxEntrySize) { this.#lru.delete(key); return false }
    const old = this.#lru.peek(key)
    const replaced = old === undefined ? 0 : old.size + key.length
    let evicted = -1
    if (this.#used() - replaced + size > this.#maxSize) {
      evicted = this.#step(size)
      // Still over the hard bound after a step: refused, and the steps go
      // on. The older copy goes too: a hit must not answer with what this
      // put replaced.
      if (this.#used() - (this.#lru.peek(key) === old ? replaced : 0) + size > this.#maxSize + this.#maxEntrySize) {
        this.#lru.delete(key)
        this.#scheduleDrain()
        if (writeDroppedChannel.hasSubscribers) writeDroppedChannel.publish({ tier: this.name, reason: 'evicting' })
        this.#stepped(evicted)
        return false
      }
    }
    this.#keep = entry.body.buffer
    this.#lru.set(key, entry, { ttl: Math.ceil(ttlMs) })
    this.#keep = undefined
    if (this.#used() > this.#maxSize) this.#scheduleDrain()
    if (evicted >= 0) this.#stepped(evicted)
    // lru-cache drops an entry larger than maxEntrySize without telling us.
    if (this.#lru.peek(key) !== entry) return false
    addIndex(this.#byUrl, entry.meta.url, key)
    for (const t of entry.meta.tags) addIndex(this.#byTag, t, key)
    return true
  }

  /** Evicts up to EVICTIONS_PER_STEP least-recently-used entries, until `room` more bytes fit under maxSize. */
  #step (room: number): number {
    let evicted = 0
    while (evicted < EVICTIONS_PER_STEP && this.#lru.size > 0 && this.#used() + room > this.#maxSize) {
      this.#lru.pop()
      evicted++
    }
    return evicted
  }

  #stepped (evicted: number): void {
    if (stepChannel.hasSubscribers) {
      stepChannel.publish({ tier: this.name, evicted, bytes: this.#lru.calculatedSize, maxBytes: this.#maxSize, pending: this.#drain !== undefined })
    }
  }

  #scheduleDrain (): void {
    if (this.#drain !== undefined || this.#closed) return
    this.#drain = setImmediate(() => {
      this.#drain = undefined
      if (this.#closed) return
      const evicted = this.#step(0)
      if (this.#used() > this.#maxSize && this.#lru.size > 0) this.#scheduleDrain()
      this.#stepped(evicted)
    })
  }

  /** Live bytes plus the unreclaimed bytes counted against maxSize. */
  #used (): number {
    return this.#lru.calculatedSize + Math.min(this.#unreclaimed, this.#unreclaimedCap)
  }

  /** Counts a body that left the tier until V8 frees its memory. */
  #watch (body: Buffer): void {
    const mem = body.buffer
    if (this.#closed || body.byteLength < WATCHED_BODY || mem === this.#keep || this.#watched.has(mem)) return
    this.#watched.add(mem)
    this.#unreclaimed += mem.byteLength
    this.#freed.register(mem, mem.byteLength)
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
