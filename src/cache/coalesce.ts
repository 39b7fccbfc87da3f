/**
 * The waiting list (STYLE §2.11): concurrent misses for one key make one
 * upstream request. The first caller leads (gets a `Lock`); later callers
 * wait for the leader's outcome. The map always empties: a lock is removed
 * when the leader releases it, or when its timer fires.
 *
 * - Lock timeout: one unref'd timer per lock, started when the leader
 *   starts. When it fires, every waiter is released with `timeout` (and
 *   goes upstream on its own) and the key is free for a new leader, so no
 *   request waits longer than `lockTimeout` behind a slow leader.
 * - Hit-for-miss: a key whose response turned out uncacheable is remembered
 *   (bounded LRU, `hitForMiss` ms) so later requests skip the queue and go
 *   upstream in parallel, as Varnish does.
 */
import { LRUCache } from 'lru-cache'

export type Release<T> =
  | { readonly kind: 'done', readonly value: T }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'aborted' }

export interface CoalescerOptions {
  /** How long waiters wait for a leader, ms. @default 5000 */
  readonly lockTimeout: number
  /** How long an uncacheable key skips coalescing, ms (0 = never remember). @default 120000 */
  readonly hitForMiss: number
  /** Most keys in flight / remembered as hit-for-miss. @default 10000 */
  readonly maxKeys?: number
  /** Most waiters on one key; more go upstream alone. @default 10000 */
  readonly maxWaiters?: number
  readonly now?: () => number
}

interface Waiter<T> {
  resolve: (r: Release<T>) => void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

interface Flight<T> {
  waiters: Array<Waiter<T>>
  timer: NodeJS.Timeout
  lock: Lock<T> | undefined
}

const kTimeout: Release<never> = { kind: 'timeout' }
const kAborted: Release<never> = { kind: 'aborted' }

export class Lock<T> {
  readonly key: string
  readonly #owner: Coalescer<T>
  readonly #flight: Flight<T>
  #released = false
  /**
   * Called once when the flight ends (released, timed out or closed): the
   * gateway-wide and cross-instance waiting lists (miss-lock.ts) hang off
   * the local leader here, so they end exactly when the local one does.
   */
  onEnd: ((r: Release<T>) => void) | undefined
  /**
   * Purges entered while this flight ran (hard ones as `soft: false`): its
   * fill started before them, so what it brings is not stored (or stored
   * soft-purged). Set by the HTTP cache; bounded by the purges of one fill's life.
   */
  readonly bans: Array<{ readonly sel: unknown, readonly soft: boolean }> = []

  constructor (owner: Coalescer<T>, key: string, flight: Flight<T>) {
    this.#owner = owner
    this.key = key
    this.#flight = flight
  }

  get released (): boolean { return this.#released }

  /** Hands `value` to every waiter and frees the key. Idempotent. */
  release (value: T): void {
    if (this.#released) return
    this.#released = true
    this.#owner.end(this.key, this.#flight, { kind: 'done', value })
  }
}

export class Coalescer<T> {
  readonly #flights = new Map<string, Flight<T>>()
  readonly #hfm: LRUCache<string, true>
  readonly #lockTimeout: number
  readonly #hfmTtl: number
  readonly #maxKeys: number
  readonly #maxWaiters: number
  #waiting = 0

  constructor (opts: CoalescerOptions) {
    if (!(opts.lockTimeout > 0)) throw new TypeError(`cache.lockTimeout must be a positive number of ms, got ${String(opts.lockTimeout)}`)
    this.#lockTimeout = opts.lockTimeout
    this.#hfmTtl = opts.hitForMiss
    this.#maxKeys = opts.maxKeys ?? 10_000
    this.#maxWaiters = opts.maxWaiters ?? 10_000
    const now = opts.now ?? Date.now
    this.#hfm = new LRUCache<string, true>({ max: this.#maxKeys, ttl: Math.max(1, opts.hitForMiss), perf: { now } })
  }

  /**
   * A `Lock` when the caller leads, a promise of the leader's outcome when it
   * waits, or undefined when it should go upstream alone (the key is
   * hit-for-miss, or too many keys / waiters are in flight).
   */
  acquire (key: string, signal?: AbortSignal): Lock<T> | Promise<Release<T>> | undefined {
    if (this.#hfm.has(key)) return undefined
    const f = this.#flights.get(key)
    if (f === undefined) return this.tryLead(key)
    if (f.waiters.length >= this.#maxWaiters) return undefined
    if (signal?.aborted === true) return Promise.resolve(kAborted)
    return new Promise<Release<T>>((resolve) => {
      const w: Waiter<T> = { resolve, signal, onAbort: undefined }
      if (signal !== undefined) {
        w.onAbort = () => {
          const i = f.waiters.indexOf(w)
          if (i !== -1) { f.waiters.splice(i, 1); this.#waiting-- }
          resolve(kAborted)
        }
        signal.addEventListener('abort', w.onAbort, { once: true })
      }
      f.waiters.push(w)
      this.#waiting++
    })
  }

  /** A lock if nobody is fetching `key`, else undefined (never waits): for background refreshes. */
  tryLead (key: string): Lock<T> | undefined {
    if (this.#flights.has(key) || this.#flights.size >= this.#maxKeys) return undefined
    const flight: Flight<T> = { waiters: [], timer: undefined as unknown as NodeJS.Timeout, lock: undefined }
    flight.timer = setTimeout(() => { this.end(key, flight, kTimeout) }, this.#lockTimeout)
    flight.timer.unref()
    this.#flights.set(key, flight)
    const lock = new Lock(this, key, flight)
    flight.lock = lock
    return lock
  }

  /** @internal Ends a flight: resolves its waiters and frees the key if the flight is still current. */
  end (key: string, flight: Flight<T>, r: Release<T>): void {
    clearTimeout(flight.timer)
    const lock = flight.lock
    flight.lock = undefined
    lock?.onEnd?.(r)
    if (this.#flights.get(key) === flight) this.#flights.delete(key)
    const ws = flight.waiters
    flight.waiters = []
    this.#waiting -= ws.length
    for (const w of ws) {
      if (w.onAbort !== undefined) w.signal?.removeEventListener('abort', w.onAbort)
      w.resolve(r)
    }
  }

  /**
   * Lets no new request join a flight that is running now (their waiters
   * still get its outcome): after a purge, a fill that started before it may
   * bring the purged copy, and a request that arrives after must not wait for it.
   */
  detachAll (ban?: { readonly sel: unknown, readonly soft: boolean }): void {
    if (ban !== undefined) for (const f of this.#flights.values()) if (f.lock !== undefined && f.lock.bans.length < 100) f.lock.bans.push(ban)
    this.#flights.clear()
  }

  inFlight (key: string): boolean {
    return this.#flights.has(key)
  }

  isHitForMiss (key: string): boolean {
    return this.#hfm.has(key)
  }

  markHitForMiss (key: string): void {
    if (this.#hfmTtl > 0) this.#hfm.set(key, true)
  }

  clearHitForMiss (key: string): void {
    this.#hfm.delete(key)
  }

  stats (): { inFlight: number, waiting: number, hitForMiss: number } {
    return { inFlight: this.#flights.size, waiting: this.#waiting, hitForMiss: this.#hfm.size }
  }

  /** Releases every waiter (they go upstream alone) and forgets everything. */
  close (): void {
    for (const [key, f] of [...this.#flights]) this.end(key, f, kTimeout)
    this.#hfm.clear()
  }
}
