/**
 * Types at the fetch pool's boundary. The theme engine only sees
 * `ResourceLoader`; the server sees `FetchPool` and `FetchOutcome`.
 */

/** A stored copy of an external resource, immutable once created. */
export interface FetchedResource {
  readonly url: string
  readonly status: number
  /** Lower-case names; hop-by-hop headers and `set-cookie` are dropped. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Buffer
  /** Strong validator: the origin's strong ETag, else `sha256:<hex>` of the body. */
  readonly version: string
  /** When the copy (or its last 304 renewal) arrived, ms since the epoch. */
  readonly fetchedAt: number
  /** Until when the copy is fresh, ms since the epoch. */
  readonly freshUntil: number
}

/**
 * How `get()` got its answer:
 * - `fresh`: a fresh copy, no job involved;
 * - `stale`: a stale copy, because the refresh did not finish within the wait,
 *   failed, is backed off, or the origin's circuit is open;
 * - `refreshed`: a refresh (200 or 304) finished within the wait;
 * - `fetched`: there was no copy at all and a fetch finished within `missWait`;
 *   `refreshed` is used instead whenever an older copy existed.
 */
export interface FetchOutcome {
  readonly resource: FetchedResource
  readonly state: 'fresh' | 'stale' | 'refreshed' | 'fetched'
}

/** Same shape as the theme engine's loader, declared here so the fetcher does not import `src/theme`. */
export type ResourceLoader = (url: string, signal?: AbortSignal) => Promise<{ body: Buffer, contentType?: string, version: string }>

export type CircuitState = 'closed' | 'open' | 'half-open'

export interface FetchPoolStats {
  /** Jobs holding one of the `concurrency` slots. */
  readonly jobsInFlight: number
  /** Jobs waiting for a slot. */
  readonly jobsQueued: number
  /** Every origin the pool currently tracks (failing ones, and healthy ones it has seen). */
  readonly circuits: Record<string, CircuitState>
  /** Copies held in memory (and on disk). */
  readonly entries: number
  /** Body bytes held in memory. */
  readonly bytes: number
  /** Persisted files found corrupt and removed since start. */
  readonly corruptFiles: number
  /** Persistence writes that failed since start. */
  readonly persistErrors: number
}

/**
 * Seam for cross-instance single-flight (a later issue builds it on Redis).
 * The pool calls `run` around the network part of every job; an
 * implementation may hold a distributed lock, or wait for another instance's
 * result and return it instead of calling `fetch`. The pool's own deadline
 * signal is passed so a lock wait is bounded by the job's total deadline.
 */
export interface FetchLock {
  run (key: string, signal: AbortSignal, fetch: () => Promise<FetchedResource>): Promise<FetchedResource>
}
