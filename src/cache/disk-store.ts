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
 * Crash safety: a write goes to `<dir>/tmp/<pid>.<id>/…` and is renamed into
 * place, so a `kill -9` leaves either the old file, the new file, or a temp
 * file that the next open deletes (not those of live processes: the
 * processes of a gateway share the directory). `fsync` (off by default) adds power-loss durability; the
 * CRCs make sure that whatever a power loss tears is dropped, never served.
 *
 * Byte accounting is synchronous and exact: a put learns its file's size
 * before any byte is written (the entry is handed to `writev` as buffers,
 * never built into a second copy), evicts least-recently-used files from the
 * index until it fits, and reserves its bytes, all in one turn of the event
 * loop; so the files on disk never add up to more than `maxSize`. The file
 * operations then run in parallel across keys (256 at once) and in order per
 * key (`IoLanes`), each write four thread-pool calls (disk-write.ts). Pending
 * puts are bounded in bytes (`maxPendingBytes`, 64 MiB), since a queued write
 * holds its body, and in number (`maxPendingWrites`); a put beyond either is
 * refused (false) before it costs anything, because the disk tier sits behind
 * memory and must never build a backlog that costs more memory than the
 * bound. With 8 writes at once, each waiting for the busy event loop between
 * its steps, a cold-miss fill got 12-17% of its pages to disk (issue 15).
 * Refusals are counted (`livery:cache:write_dropped`) and logged at most
 * once per 10 s.
 *
 * Reads are lock-free: rename is atomic, so a read sees a whole old or whole
 * new file.
 *
 * Metrics (node:diagnostics_channel):
 * - `livery:cache:eviction` `{ tier, bytes }` — an entry evicted for room.
 * - `livery:cache:corrupt` `{ tier, key, reason }` — a file failed its
 *   checksum or parse; it was deleted and the read was a miss.
 * - `livery:cache:write_error` `{ tier, error }` — a write failed.
 * - `livery:cache:write_dropped` `{ tier, reason }` — a put was refused:
 *   `queue_full`, or `no_room` when the entry is larger than the tier can hold.
 * `stats()` gives `{ disk: { entries, bytes, maxBytes, evictions } }`
 * (`livery_cache_bytes{tier="disk"}`, `livery_cache_evictions_total{tier="disk"}`)
 * and `diskStats()` adds `corrupt` and `writeErrors` counters.
 */
import { randomBytes } from 'node:crypto'
import { channel } from 'node:diagnostics_channel'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { liveryError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { silentLogger } from '../log.ts'
import { type CacheEntry, decodeEntry, softPurged } from './entry.ts'
import { type CacheStore, type PurgeOptions, type PurgeSelector, type TierStats, matchesMeta } from './store.ts'
import { fileParts, parseFile } from './disk-file.ts'
import { DiskIndex, type FileRecord, hashKey } from './disk-index.ts'
import { entryPath, readHeads, scanDirectory } from './disk-scan.ts'
import { IoLanes } from './io-lanes.ts'
import { mkdirp, unlinkQuiet, writeAtomic } from './disk-write.ts'
import { storageDeadline } from './tiered-store.ts'

const evictionChannel = channel('livery:cache:eviction')
const corruptChannel = channel('livery:cache:corrupt')
const writeErrorChannel = channel('livery:cache:write_error')
const writeDroppedChannel = channel('livery:cache:write_dropped')

export interface DiskStoreOptions {
  /** Directory the tier owns (created if missing), e.g. `<cache.directory>/http`. */
  readonly directory: string
  /** Byte budget of all entry files together (`cache.disk.maxSize`). */
  readonly maxSize: number
  /** Largest single file in bytes. @default maxSize / 8 */
  readonly maxEntrySize?: number
  /** fsync each file before renaming it into place (power-loss durability). @default false */
  readonly fsync?: boolean
  /**
   * Bytes of puts accepted and not yet on disk before further puts are
   * refused (`cache.disk.maxPendingBytes`). The bound is in bytes because
   * that is what a backlog costs: a queued write holds its entry's body, and
   * once the memory tier has evicted that entry, only the queue keeps it
   * alive. @default 64 MiB
   */
  readonly maxPendingBytes?: number
  /** Puts accepted and not yet on disk before further puts are refused, whatever their size. @default 4096 */
  readonly maxPendingWrites?: number
  /** File operations run at once (across keys; one key's run in order). @default 256 */
  readonly maxParallelWrites?: number
  /** Tier name in metrics. @default 'disk' */
  readonly name?: string
  readonly logger?: Logger
  /** Clock for expiry. @default Date.now */
  readonly now?: () => number
}

export interface DiskStats {
  readonly entries: number
  readonly bytes: number
  readonly corrupt: number
  readonly writeErrors: number
  readonly writesDropped: number
  readonly evictions: number
}

/** A put accepted and not yet renamed into place; a purge or delete cancels it. */
interface PendingWrite {
  readonly key: string
  readonly url: string
  readonly site: string
  readonly tags: readonly string[]
  cancelled: boolean
}

/** Files one put may evict: bounded work per turn of the event loop. */
export const EVICTIONS_PER_PUT = 256

/** At most one drop warning per this many ms: a burst must not become a log flood. */
const DROP_LOG_INTERVAL = 10_000

export class DiskStore implements CacheStore {
  readonly name: string
  readonly syncComplete = false
  readonly #dir: string
  readonly #tmp: string
  readonly #maxEntrySize: number
  readonly #fsync: boolean
  readonly #maxPending: number
  readonly #maxPendingBytes: number
  readonly #log: Logger
  readonly #now: () => number
  readonly #index: DiskIndex
  #evictions = 0
  #corrupt = 0
  #writeErrors = 0
  #writesDropped = 0
  #dropsUnlogged = 0
  #dropLoggedAt = -Infinity
  readonly #lanes: IoLanes
  readonly #writing = new Map<string, PendingWrite>()
  /** Subdirectories known to exist, so a write does not mkdir each time. */
  readonly #dirs = new Set<string>()
  #pending = 0
  #pendingBytes = 0
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
    // One temp directory per store: others may be writing under tmp/ (disk-scan.ts).
    this.#tmp = join(opts.directory, 'tmp', `${process.pid}.${randomBytes(4).toString('hex')}`)
    this.#index = new DiskIndex(opts.maxSize)
    this.#maxEntrySize = maxEntrySize
    this.#fsync = opts.fsync ?? false
    this.#maxPending = opts.maxPendingWrites ?? 4096
    this.#maxPendingBytes = opts.maxPendingBytes ?? 64 * 1024 * 1024
    if (!Number.isSafeInteger(this.#maxPendingBytes) || this.#maxPendingBytes <= 0) {
      throw new TypeError(`cache.disk.maxPendingBytes must be a positive number of bytes, got ${String(opts.maxPendingBytes)}`)
    }
    this.#lanes = new IoLanes(opts.maxParallelWrites ?? 256)
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
    store.#indexed = readHeads({
      dir: store.#dir,
      records: store.#index.records(),
      current: rec => store.#index.get(rec.hash) === rec,
      stopped: () => store.#closed,
      missing: rec => { store.#index.forget(rec) },
      corrupt: (rec, err) => { store.#dropCorrupt(rec.hash, rec.hash, err) },
    })
    return store
  }

  async get (key: string): Promise<CacheEntry | undefined> {
    this.#check()
    const hash = hashKey(key)
    const rec = this.#index.get(hash)
    if (rec === undefined) return undefined
    if (rec.expiresAt !== 0 && rec.expiresAt <= this.#now()) {
      this.#remove(rec)
      return undefined
    }
    let buf: Buffer
    try {
      buf = await readFile(this.#path(hash))
    } catch (err) {
      // Evicted or deleted between the index lookup and the read.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.#index.forget(rec)
      else this.#log.warn({ err, key }, 'disk cache read failed')
      return undefined
    }
    try {
      const file = parseFile(buf)
      if (file.key !== key) return undefined // a sha256 collision: treat as a miss
      const entry = decodeEntry(buf.subarray(file.entryStart), key, this.name)
      storageDeadline.set(entry, file.expiresAt)
      this.#index.touch(rec)
      return entry
    } catch (err) {
      this.#dropCorrupt(hash, key, err)
      return undefined
    }
  }

  async put (key: string, entry: CacheEntry, ttlMs: number): Promise<boolean> {
    this.#check()
    if (!(ttlMs > 0)) return false
    // Refused before any work: a full queue must cost nothing more. The
    // body's length stands for the file's (the head adds a few hundred bytes).
    const body = entry.body.length
    if (this.#pending >= this.#maxPending || (this.#pendingBytes > 0 && this.#pendingBytes + body > this.#maxPendingBytes)) {
      this.#dropped('queue_full')
      return false
    }
    if (body > this.#maxEntrySize) return false
    const file = fileParts(key, entry, this.#now() + ttlMs)
    if (file.length > this.#maxEntrySize) return false
    const hash = hashKey(key)
    if (!this.#makeRoom(file.length)) { this.#dropped('no_room'); return false }
    // Reserved before the file exists, so the sum never overshoots.
    this.#index.reserve(file.length)
    // A newer put of the same key supersedes one still waiting in the lane.
    const earlier = this.#writing.get(hash)
    if (earlier !== undefined) earlier.cancelled = true
    const m = entry.meta
    const w: PendingWrite = { key, url: m.url, site: m.site, tags: m.tags, cancelled: false }
    this.#writing.set(hash, w)
    this.#pending++
    this.#pendingBytes += file.length
    try {
      return await this.#lanes.run(hash, () => this.#write(hash, w, file))
    } catch (err) {
      this.#writeFailed(err)
      return false
    } finally {
      this.#pending--
      this.#pendingBytes -= file.length
      if (this.#writing.get(hash) === w) this.#writing.delete(hash)
    }
  }

  async delete (key: string): Promise<boolean> {
    this.#check()
    const hash = hashKey(key)
    const w = this.#writing.get(hash)
    if (w !== undefined) w.cancelled = true
    const rec = this.#index.get(hash)
    if (rec !== undefined) await this.#remove(rec)
    else await this.#lanes.run(hash, async () => {})
    return rec !== undefined || w !== undefined
  }

  async * keys (): AsyncIterable<string> {
    this.#check()
    await this.#indexed
    const now = this.#now()
    for (const rec of this.#index.records()) {
      if (rec.key !== '' && (rec.expiresAt === 0 || rec.expiresAt > now)) yield rec.key
    }
  }

  async purge (sel: PurgeSelector, opts: PurgeOptions = {}): Promise<number> {
    this.#check()
    await this.#indexed
    const now = opts.now ?? this.#now()
    // Selected synchronously: puts accepted before the purge and not yet on
    // disk are selected too (a purge must never be overtaken by a write-back).
    const hits = this.#index.records().filter(r => r.key !== '' && matchesMeta(r, sel))
    const pending = [...this.#writing].filter(([, w]) => !w.cancelled && matchesMeta(w, sel))
    // An entry counts once, though its file is on disk and a newer copy of it is being written.
    const hashes = new Set([...hits.map(r => r.hash), ...pending.map(([h]) => h)])
    if (opts.soft !== true) {
      for (const [, w] of pending) w.cancelled = true
      await Promise.all(hits.map(rec => this.#remove(rec)))
      return hashes.size
    }
    // A soft purge rewrites each file after whatever is already queued for its key.
    const done = await Promise.all([...hashes].map(hash => this.#lanes.run(hash, () => this.#softPurge(hash, now)).catch((err: unknown) => {
      this.#writeFailed(err)
      return false
    })))
    return done.filter(Boolean).length
  }

  async clear (): Promise<void> {
    this.#check()
    for (const w of this.#writing.values()) w.cancelled = true
    await Promise.all(this.#index.records().map(rec => this.#remove(rec)))
  }

  stats (): Readonly<Record<string, TierStats>> {
    return { [this.name]: { entries: this.#index.size, bytes: this.#index.bytes, maxBytes: this.#index.maxSize, evictions: this.#evictions } }
  }

  diskStats (): DiskStats {
    return { entries: this.#index.size, bytes: this.#index.bytes, corrupt: this.#corrupt, writeErrors: this.#writeErrors, writesDropped: this.#writesDropped, evictions: this.#evictions }
  }

  /** Waits for queued writes, then refuses further calls. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#lanes.idle()
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
    return entryPath(this.#dir, hash)
  }

  #writeFailed (err: unknown): void {
    this.#writeErrors++
    if (writeErrorChannel.hasSubscribers) writeErrorChannel.publish({ tier: this.name, error: err })
    this.#log.warn({ err: err instanceof Error ? err.message : String(err), tier: this.name }, 'disk cache write failed')
  }

  /** Counts a refused put; logs one line per DROP_LOG_INTERVAL with the count since the last. */
  #dropped (reason: 'queue_full' | 'no_room'): void {
    this.#writesDropped++
    this.#dropsUnlogged++
    if (writeDroppedChannel.hasSubscribers) writeDroppedChannel.publish({ tier: this.name, reason })
    const now = performance.now()
    if (now - this.#dropLoggedAt < DROP_LOG_INTERVAL) return
    this.#log.warn({ tier: this.name, dropped: this.#dropsUnlogged, reason, pending: this.#pending, pendingBytes: this.#pendingBytes }, 'disk cache refused writes (the tier is behind memory, so the pages stay served; see livery_cache_writes_dropped_total)')
    this.#dropsUnlogged = 0
    this.#dropLoggedAt = now
  }

  /**
   * Evicts least-recently-used files until `size` more bytes fit, at most
   * EVICTIONS_PER_PUT of them: a 16 MB entry replacing thousands of small
   * files would otherwise queue thousands of deletions in one turn of the
   * event loop (issue 15, item 8). A put that does not fit after that is
   * refused as `no_room`; the room made serves the next ones.
   */
  #makeRoom (size: number): boolean {
    return this.#index.makeRoom(size, victim => {
      void this.#unlinkInLane(victim.hash)
      this.#evictions++
      if (evictionChannel.hasSubscribers) evictionChannel.publish({ tier: this.name, bytes: victim.size })
    }, EVICTIONS_PER_PUT)
  }

  /** Runs in the key's lane. Writes a temp file and renames it into place, unless cancelled meanwhile. */
  async #write (hash: string, w: PendingWrite, file: { parts: Buffer[], length: number }): Promise<boolean> {
    if (w.cancelled) { this.#index.release(file.length); return false }
    const tmp = join(this.#tmp, `${hash}.${process.pid}.${this.#tmpSeq++}.tmp`)
    try {
      const sub = hash.slice(0, 2)
      if (!this.#dirs.has(sub)) { await mkdirp(join(this.#dir, sub)); this.#dirs.add(sub) }
      await writeAtomic({ tmp, path: this.#path(hash), parts: file.parts, length: file.length, sync: this.#fsync })
    } catch (err) {
      this.#index.release(file.length)
      throw err
    }
    const rec: FileRecord = { hash, size: file.length, key: w.key, url: w.url, site: w.site, tags: w.tags, expiresAt: file.parts[0].readDoubleBE(8) }
    this.#index.add(rec, true)
    // Purged or deleted while the rename was under way: the file goes again.
    if (w.cancelled) await this.#unlink(rec)
    return !w.cancelled
  }

  /** Runs in the key's lane: rewrites the current file as soft-purged. */
  async #softPurge (hash: string, now: number): Promise<boolean> {
    const rec = this.#index.get(hash)
    if (rec === undefined) return false
    const entry = await this.#readEntry(rec)
    if (entry === undefined || this.#index.get(hash) !== rec) return false
    if (rec.expiresAt - now <= 0) { await this.#unlink(rec); return false }
    const file = fileParts(rec.key, softPurged(entry, now), rec.expiresAt)
    this.#index.forget(rec)
    if (!this.#makeRoom(file.length)) { await unlinkQuiet(this.#path(hash)); return false }
    this.#index.reserve(file.length)
    return await this.#write(hash, { key: rec.key, url: rec.url, site: rec.site, tags: rec.tags, cancelled: false }, file)
  }

  /** Drops a record from the index now, and its file in the key's lane (after the writes before it). */
  #remove (rec: FileRecord): Promise<void> {
    if (!this.#index.forget(rec)) return Promise.resolve()
    return this.#unlinkInLane(rec.hash)
  }

  /** Deletes the file in the key's lane, unless a write queued meanwhile put a new one in place. */
  #unlinkInLane (hash: string): Promise<void> {
    return this.#lanes.run(hash, async () => {
      if (!this.#index.has(hash)) await unlinkQuiet(this.#path(hash))
    }).catch((err: unknown) => { this.#writeFailed(err) })
  }

  /** Inside a lane: deletes the file and its record. */
  async #unlink (rec: FileRecord): Promise<void> {
    this.#index.forget(rec)
    await unlinkQuiet(this.#path(rec.hash))
  }

  #dropCorrupt (hash: string, key: string, err: unknown): void {
    this.#corrupt++
    const reason = err instanceof Error ? err.message : String(err)
    if (corruptChannel.hasSubscribers) corruptChannel.publish({ tier: this.name, key, reason })
    this.#log.warn({ key, reason }, 'dropped a corrupt disk cache file')
    const rec = this.#index.get(hash)
    if (rec !== undefined) void this.#remove(rec)
  }

  async #readEntry (rec: FileRecord): Promise<CacheEntry | undefined> {
    try {
      const buf = await readFile(this.#path(rec.hash))
      const file = parseFile(buf)
      return decodeEntry(buf.subarray(file.entryStart), rec.key, this.name)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') { this.#index.forget(rec); return undefined }
      this.#corrupt++
      if (corruptChannel.hasSubscribers) corruptChannel.publish({ tier: this.name, key: rec.key, reason: String(err) })
      await this.#unlink(rec)
      return undefined
    }
  }

  /** Rebuilds the byte accounting from file names and sizes. If the budget shrank, the oldest go first. */
  async #scan (): Promise<void> {
    const { records, dirs } = await scanDirectory(this.#dir, this.#tmp)
    for (const d of dirs) this.#dirs.add(d)
    for (const rec of records) this.#index.add(rec, false)
    while (this.#index.bytes > this.#index.maxSize) {
      const victim = this.#index.oldest()
      if (victim === undefined) break
      await this.#remove(victim)
      this.#evictions++
    }
  }
}
