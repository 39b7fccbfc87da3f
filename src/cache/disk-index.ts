/**
 * What the disk tier knows about its files, in process memory: one record per
 * file in least-recently-used order, and the bytes they add up to (reserved
 * bytes of writes not yet on disk included, so the sum never overshoots).
 * Synchronous on purpose: a put learns whether it fits, evicts and reserves
 * in one turn of the event loop.
 *
 * Another process sharing the directory would need its own view of these
 * records; everything that decides what is on disk lives here, apart from the
 * file operations themselves (disk-store.ts).
 */
import { createHash } from 'node:crypto'

/** What the tier knows about one file. `key` is '' until the head is read (after a restart). */
export interface FileRecord {
  readonly hash: string
  size: number
  key: string
  url: string
  site: string
  tags: readonly string[]
  /** Storage deadline (ms since epoch); 0 until the head is read. */
  expiresAt: number
}

export class DiskIndex {
  readonly maxSize: number
  /** Insertion order is recency: the first record is the least recently used. */
  readonly #files = new Map<string, FileRecord>()
  #bytes = 0

  constructor (maxSize: number) {
    this.maxSize = maxSize
  }

  get size (): number { return this.#files.size }
  /** Bytes of the files indexed plus bytes reserved by writes not yet renamed into place. */
  get bytes (): number { return this.#bytes }

  get (hash: string): FileRecord | undefined {
    return this.#files.get(hash)
  }

  has (hash: string): boolean {
    return this.#files.has(hash)
  }

  /** Marks `rec` most recently used, if it is still the record for its hash. */
  touch (rec: FileRecord): void {
    if (this.#files.get(rec.hash) !== rec) return
    this.#files.delete(rec.hash)
    this.#files.set(rec.hash, rec)
  }

  /**
   * Indexes a file whose bytes were reserved (`reserve`) or already counted
   * (a scan). A record it replaces gives its bytes back.
   */
  add (rec: FileRecord, counted: boolean): void {
    const current = this.#files.get(rec.hash)
    if (current !== undefined) { this.#bytes -= current.size; this.#files.delete(rec.hash) }
    this.#files.set(rec.hash, rec)
    if (!counted) this.#bytes += rec.size
  }

  /** Drops `rec` and its bytes, if it is still the record for its hash. True when it was. */
  forget (rec: FileRecord): boolean {
    if (this.#files.get(rec.hash) !== rec) return false
    this.#files.delete(rec.hash)
    this.#bytes -= rec.size
    return true
  }

  reserve (size: number): void { this.#bytes += size }
  release (size: number): void { this.#bytes -= size }

  oldest (): FileRecord | undefined {
    for (const rec of this.#files.values()) return rec
    return undefined
  }

  /**
   * Picks least-recently-used records to evict until `size` more bytes fit,
   * at most `limit` of them, forgets them and hands each to `evict` (which
   * deletes the file). False when `size` does not fit after that: the rest
   * is reserved by writes in flight, or more than `limit` files would have to
   * go (one large entry among many small ones); the room made stays for the
   * next puts.
   */
  makeRoom (size: number, evict: (rec: FileRecord) => void, limit = Infinity): boolean {
    if (size > this.maxSize) return false
    for (let n = 0; this.#bytes + size > this.maxSize; n++) {
      const victim = this.oldest()
      if (victim === undefined || n >= limit) return false
      this.forget(victim)
      evict(victim)
    }
    return true
  }

  /** A snapshot of the records, oldest first (safe to mutate the index while iterating it). */
  records (): FileRecord[] {
    return [...this.#files.values()]
  }
}

/** The file name of a key: sha256, hex. */
export function hashKey (key: string): string {
  return createHash('sha256').update(key).digest('hex')
}
