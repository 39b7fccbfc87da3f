/**
 * The disk tier: one file per entry under its directory (the lead passes
 * `<cache.directory>/http`), bounded in bytes with LRU eviction, safe across
 * `kill -9`, readable after a restart.
 *
 * File layout: `<dir>/<h0h1>/<sha256(key)>.e`, each file
 *
 *     "LVD1" | u32 headLength | head | u32 crc32(head) | encodeEntry(entry)
 *
 * where `head` holds the storage deadline (f64), the key, url, site and tags.
 * The head lets a restart rebuild the purge index by reading a few hundred
 * bytes per file; the entry's own CRC (entry.ts) catches a torn body.
 *
 * Crash safety: a write goes to `<dir>/tmp/…` and is renamed into place, so a
 * `kill -9` leaves either the old file, the new file, or a temp file that the
 * next open deletes. `fsync` (off by default) adds power-loss durability; the
 * CRCs make sure that whatever a power loss tears is dropped, never served.
 *
 * Every mutation (put, delete, purge, eviction) runs on one serial queue, so
 * the byte accounting is exact: a write first evicts least-recently-used
 * files until the new file fits, and only then creates it, so the files on
 * disk never add up to more than `maxSize`. The queue is bounded
 * (`maxPendingWrites`); a put arriving at a full queue is refused (false),
 * because the disk tier sits behind memory and must never build a backlog.
 *
 * Reads are lock-free: rename is atomic, so a read sees a whole old or whole
 * new file.
 *
 * Metrics (node:diagnostics_channel):
 * - `livery:cache:eviction` `{ tier, bytes }` — an entry evicted for room.
 * - `livery:cache:corrupt` `{ tier, key, reason }` — a file failed its
 *   checksum or parse; it was deleted and the read was a miss.
 * - `livery:cache:write_error` `{ tier, error }` — a write failed or was refused
 *   because the queue was full.
 * `stats()` gives `{ disk: { entries, bytes, maxBytes, evictions } }`
 * (`livery_cache_bytes{tier="disk"}`, `livery_cache_evictions_total{tier="disk"}`)
 * and `diskStats()` adds `corrupt` and `writeErrors` counters.
 */
import { channel } from 'node:diagnostics_channel'
import { createHash } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { liveryError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { silentLogger } from '../log.ts'
import { type CacheEntry, decodeEntry, softPurged } from './entry.ts'
import { type CacheStore, type PurgeOptions, type PurgeSelector, type TierStats, matchesMeta } from './store.ts'
import { buildFile, parseFile, readHead } from './disk-file.ts'
import { storageDeadline } from './tiered-store.ts'

const evictionChannel = channel('livery:cache:eviction')
const corruptChannel = channel('livery:cache:corrupt')
const writeErrorChannel = channel('livery:cache:write_error')

export interface DiskStoreOptions {
  /** Directory the tier owns (created if missing), e.g. `<cache.directory>/http`. */
  readonly directory: string
  /** Byte budget of all entry files together (`cache.disk.maxSize`). */
  readonly maxSize: number
  /** Largest single file in bytes. @default maxSize / 8 */
  readonly maxEntrySize?: number
  /** fsync each file before renaming it into place (power-loss durability). @default false */
  readonly fsync?: boolean
  /** Mutations allowed to wait on the serial queue before puts are refused. @default 256 */
  readonly maxPendingWrites?: number
  /** Tier name in metrics. @default 'disk' */
  readonly name?: string
  readonly logger?: Logger
  /** Clock for expiry. @default Date.now */
  readonly now?: () => number
}

/** What the tier knows about one file. `key` is '' until the head is read. */
interface FileRecord {
  readonly hash: string
  size: number
  key: string
  url: string
  site: string
  tags: readonly string[]
  expiresAt: number
}

export interface DiskStats {
  readonly entries: number
  readonly bytes: number
  readonly corrupt: number
  readonly writeErrors: number
  readonly evictions: number
}

const SUFFIX = '.e'

export class DiskStore implements CacheStore {
  readonly name: string
  readonly syncComplete = false
  readonly #dir: string
  readonly #tmp: string
  readonly #maxSize: number
  readonly #maxEntrySize: number
  readonly #fsync: boolean
  readonly #maxPending: number
  readonly #log: Logger
  readonly #now: () => number
  /** Insertion order is recency: the first record is the least recently used. */
  readonly #files = new Map<string, FileRecord>()
  #bytes = 0
  #evictions = 0
  #corrupt = 0
  #writeErrors = 0
  #queue: Promise<unknown> = Promise.resolve()
  #pending = 0
  #tmpSeq = 0
  #indexed: Promise<void> = Promise.resolve()
  #closed = false

  /** Use `DiskStore.open()`: the index is rebuilt from the directory first. */
  private constructor (opts: DiskStoreOptions) {
    if (typeof opts.directory !== 'string' || opts.directory === '') {
      throw new TypeError('cache.directory must be a directory path for the disk tier')
    }
    if (!Number.isSafeInteger(opts.maxSize) || opts.maxSize <= 0) {
      throw new TypeError(`cache.disk.maxSize must be a positive number of bytes, got ${String(opts.maxSize)}`)
    }
    const maxEntrySize = opts.maxEntrySize ?? Math.floor(opts.maxSize / 8)
    if (!Number.isSafeInteger(maxEntrySize) || maxEntrySize <= 0 || maxEntrySize > opts.maxSize) {
      throw new TypeError(`disk tier maxEntrySize must be a positive number of bytes no larger than cache.disk.maxSize (${opts.maxSize}), got ${String(maxEntrySize)}`)
    }
    this.name = opts.name ?? 'disk'
    this.#dir = opts.directory
    this.#tmp = join(opts.directory, 'tmp')
    this.#maxSize = opts.maxSize
    this.#maxEntrySize = maxEntrySize
    this.#fsync = opts.fsync ?? false
    this.#maxPending = opts.maxPendingWrites ?? 256
    this.#log = opts.logger ?? silentLogger
    this.#now = opts.now ?? Date.now
  }

  /**
   * Opens (or creates) the tier. Resolves once file names and sizes are
   * scanned, so gets work at once; the url/tag index for purges is read in
   * the background and `purge` / `keys` wait for it.
   */
  static async open (opts: DiskStoreOptions): Promise<DiskStore> {
    const store = new DiskStore(opts)
    await store.#scan()
    store.#indexed = store.#readHeads()
    return store
  }

  async get (key: string): Promise<CacheEntry | undefined> {
    this.#check()
    const hash = hashKey(key)
    const rec = this.#files.get(hash)
    if (rec === undefined) return undefined
    if (rec.expiresAt !== 0 && rec.expiresAt <= this.#now()) {
      void this.#enqueue(() => this.#remove(hash, rec), false)
      return undefined
    }
    let buf: Buffer
    try {
      buf = await readFile(this.#path(hash))
    } catch (err) {
      // Evicted or deleted between the index lookup and the read.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.#forget(hash, rec)
      else this.#log.warn({ err, key }, 'disk cache read failed')
      return undefined
    }
    try {
      const file = parseFile(buf)
      if (file.key !== key) return undefined // a sha256 collision: treat as a miss
      const entry = decodeEntry(buf.subarray(file.entryStart), key, this.name)
      storageDeadline.set(entry, file.expiresAt)
      if (this.#files.get(hash) === rec) { this.#files.delete(hash); this.#files.set(hash, rec) }
      return entry
    } catch (err) {
      this.#dropCorrupt(hash, key, err)
      return undefined
    }
  }

  async put (key: string, entry: CacheEntry, ttlMs: number): Promise<boolean> {
    this.#check()
    if (!(ttlMs > 0)) return false
    const file = buildFile(key, entry, this.#now() + ttlMs)
    if (file.length > this.#maxEntrySize) return false
    const ok = await this.#enqueue(() => this.#write(hashKey(key), key, entry, file), true)
    return ok === true
  }

  async delete (key: string): Promise<boolean> {
    this.#check()
    const hash = hashKey(key)
    return await this.#enqueue(async () => {
      const rec = this.#files.get(hash)
      if (rec === undefined) return false
      await this.#remove(hash, rec)
      return true
    }, false) === true
  }

  async * keys (): AsyncIterable<string> {
    this.#check()
    await this.#indexed
    const now = this.#now()
    for (const rec of [...this.#files.values()]) {
      if (rec.key !== '' && (rec.expiresAt === 0 || rec.expiresAt > now)) yield rec.key
    }
  }

  async purge (sel: PurgeSelector, opts: PurgeOptions = {}): Promise<number> {
    this.#check()
    await this.#indexed
    const now = opts.now ?? this.#now()
    const n = await this.#enqueue(async () => {
      // Selected on the queue, so writes queued before the purge are purged too.
      const hits = [...this.#files.values()].filter(r => r.key !== '' && matchesMeta(r, sel))
      let count = 0
      for (const rec of hits) {
        if (this.#files.get(rec.hash) !== rec) continue
        if (opts.soft === true) {
          const entry = await this.#readEntry(rec)
          if (entry === undefined) continue
          const remaining = rec.expiresAt - now
          if (remaining <= 0) { await this.#remove(rec.hash, rec); continue }
          const file = buildFile(rec.key, softPurged(entry, now), rec.expiresAt)
          if (await this.#write(rec.hash, rec.key, entry, file)) count++
        } else {
          await this.#remove(rec.hash, rec)
          count++
        }
      }
      return count
    }, false)
    return typeof n === 'number' ? n : 0
  }

  async clear (): Promise<void> {
    this.#check()
    await this.#enqueue(async () => {
      for (const [hash, rec] of [...this.#files]) await this.#remove(hash, rec)
      return true
    }, false)
  }

  stats (): Readonly<Record<string, TierStats>> {
    return { [this.name]: { entries: this.#files.size, bytes: this.#bytes, maxBytes: this.#maxSize, evictions: this.#evictions } }
  }

  diskStats (): DiskStats {
    return { entries: this.#files.size, bytes: this.#bytes, corrupt: this.#corrupt, writeErrors: this.#writeErrors, evictions: this.#evictions }
  }

  /** Waits for queued writes, then refuses further calls. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#queue
    await this.#indexed
  }

  /** Refuses further calls at once; queued writes finish on their own (each is atomic). */
  async destroy (): Promise<void> {
    this.#closed = true
  }

  // --- internals -----------------------------------------------------------

  #check (): void {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', `cache tier ${this.name}`)
  }

  #path (hash: string): string {
    return join(this.#dir, hash.slice(0, 2), hash + SUFFIX)
  }

  /**
   * Runs `fn` after every earlier mutation. `droppable` ops (puts) are
   * refused when the queue is full; deletes and purges always queue, since
   * skipping one would serve what the operator asked to remove.
   */
  #enqueue<T> (fn: () => Promise<T>, droppable: boolean): Promise<T | undefined> {
    if (droppable && this.#pending >= this.#maxPending) {
      this.#writeFailed(liveryError('LIVERY_ERR_CACHE_STORE', this.name, `write queue full (${this.#maxPending} pending)`))
      return Promise.resolve(undefined)
    }
    this.#pending++
    const run = this.#queue.then(fn).catch((err: unknown) => {
      this.#writeFailed(err)
      return undefined
    }).finally(() => { this.#pending-- })
    this.#queue = run
    return run
  }

  #writeFailed (err: unknown): void {
    this.#writeErrors++
    if (writeErrorChannel.hasSubscribers) writeErrorChannel.publish({ tier: this.name, error: err })
    this.#log.warn({ err }, 'disk cache write failed')
  }

  /** Runs on the queue. Makes room, writes a temp file, renames it into place. */
  async #write (hash: string, key: string, entry: CacheEntry, file: Buffer): Promise<boolean> {
    // The old version of this key still occupies disk until the rename, so
    // it is not counted as free: it may itself be evicted to make room.
    while (this.#bytes + file.length > this.#maxSize) {
      const victim = this.#oldest()
      if (victim === undefined) return false
      await this.#remove(victim.hash, victim)
      this.#evictions++
      if (evictionChannel.hasSubscribers) evictionChannel.publish({ tier: this.name, bytes: victim.size })
    }
    const tmp = join(this.#tmp, `${hash}.${process.pid}.${this.#tmpSeq++}.tmp`)
    const dir = join(this.#dir, hash.slice(0, 2))
    // Count the temp file before it exists, so the sum never overshoots.
    this.#bytes += file.length
    let renamed = false
    try {
      await mkdir(dir, { recursive: true })
      const fh = await open(tmp, 'w')
      try {
        await fh.writeFile(file)
        if (this.#fsync) await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, this.#path(hash))
      renamed = true
    } finally {
      if (!renamed) {
        this.#bytes -= file.length
        await rm(tmp, { force: true })
      }
    }
    const current = this.#files.get(hash)
    if (current !== undefined) { this.#bytes -= current.size; this.#files.delete(hash) }
    const m = entry.meta
    this.#files.set(hash, { hash, size: file.length, key, url: m.url, site: m.site, tags: m.tags, expiresAt: file.readDoubleBE(8) })
    return true
  }

  #oldest (): FileRecord | undefined {
    for (const rec of this.#files.values()) return rec
    return undefined
  }

  /** Deletes one file and its record. Runs on the queue (or for a corrupt file). */
  async #remove (hash: string, rec: FileRecord): Promise<void> {
    if (this.#files.get(hash) !== rec) return
    this.#forget(hash, rec)
    await rm(this.#path(hash), { force: true })
  }

  #forget (hash: string, rec: FileRecord): void {
    if (this.#files.get(hash) !== rec) return
    this.#files.delete(hash)
    this.#bytes -= rec.size
  }

  #dropCorrupt (hash: string, key: string, err: unknown): void {
    this.#corrupt++
    const reason = err instanceof Error ? err.message : String(err)
    if (corruptChannel.hasSubscribers) corruptChannel.publish({ tier: this.name, key, reason })
    this.#log.warn({ key, reason }, 'dropped a corrupt disk cache file')
    const rec = this.#files.get(hash)
    if (rec !== undefined) void this.#enqueue(() => this.#remove(hash, rec), false)
  }

  async #readEntry (rec: FileRecord): Promise<CacheEntry | undefined> {
    try {
      const buf = await readFile(this.#path(rec.hash))
      const file = parseFile(buf)
      return decodeEntry(buf.subarray(file.entryStart), rec.key, this.name)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') { this.#forget(rec.hash, rec); return undefined }
      this.#corrupt++
      if (corruptChannel.hasSubscribers) corruptChannel.publish({ tier: this.name, key: rec.key, reason: String(err) })
      await this.#remove(rec.hash, rec)
      return undefined
    }
  }

  /**
   * Rebuilds the byte accounting from file names and sizes; LRU order after a
   * restart is modification time. Temp files are leftovers of writes a crash
   * interrupted and are deleted. If the budget shrank, the oldest go first.
   */
  async #scan (): Promise<void> {
    await rm(this.#tmp, { recursive: true, force: true })
    await mkdir(this.#tmp, { recursive: true })
    const found: Array<{ hash: string, size: number, mtime: number }> = []
    for (const sub of await readdir(this.#dir)) {
      if (sub.length !== 2) continue
      let names: string[]
      try { names = await readdir(join(this.#dir, sub)) } catch { continue }
      for (const name of names) {
        const hash = name.slice(0, -SUFFIX.length)
        if (!name.endsWith(SUFFIX) || hash.length !== 64 || !hash.startsWith(sub)) continue
        try {
          const st = await stat(join(this.#dir, sub, name))
          found.push({ hash, size: st.size, mtime: st.mtimeMs })
        } catch { /* deleted while scanning: nothing to index */ }
      }
    }
    found.sort((a, b) => a.mtime - b.mtime)
    for (const f of found) {
      this.#files.set(f.hash, { hash: f.hash, size: f.size, key: '', url: '', site: '', tags: [], expiresAt: 0 })
      this.#bytes += f.size
    }
    while (this.#bytes > this.#maxSize) {
      const victim = this.#oldest()
      if (victim === undefined) break
      await this.#remove(victim.hash, victim)
      this.#evictions++
    }
  }

  /** Reads each file's head (key, url, tags, deadline), a few at a time. */
  async #readHeads (): Promise<void> {
    const todo = [...this.#files.values()].filter(r => r.key === '')
    const worker = async (): Promise<void> => {
      for (let rec = todo.pop(); rec !== undefined; rec = todo.pop()) {
        if (this.#closed) return
        if (this.#files.get(rec.hash) !== rec) continue
        try {
          const head = await readHead(this.#path(rec.hash), rec.size)
          if (hashKey(head.key) !== rec.hash) throw new Error('file name does not match its key')
          rec.key = head.key; rec.url = head.url; rec.site = head.site; rec.tags = head.tags; rec.expiresAt = head.expiresAt
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') { this.#forget(rec.hash, rec); continue }
          this.#dropCorrupt(rec.hash, rec.hash, err)
        }
      }
    }
    await Promise.all([worker(), worker(), worker(), worker()])
  }
}

function hashKey (key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

