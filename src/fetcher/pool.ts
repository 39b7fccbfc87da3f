/**
 * The fetch pool (DESIGN §3): external resources — theme pages, theme assets,
 * rule `href` subrequests — fetched on a dedicated undici Agent with its own
 * concurrency, one job per URL, bounded waits measured from the job's start,
 * stale-while-revalidate, stale-if-error, a per-origin circuit breaker and
 * persistence to disk. See `index.ts` for channels and semantics.
 */
import { createHash } from 'node:crypto'
import { Agent } from 'undici'
import { LRUCache } from 'lru-cache'
import { hasCode, isLiveryError, liveryError, wrapError, type ErrorCode, type LiveryError } from '../errors.ts'
import { silentLogger, type Logger } from '../log.ts'
import type { FetchConfig } from '../config/types.ts'
import { channels, type StaleReason } from './channels.ts'
import { Circuits } from './circuit.ts'
import { freshnessLifetime } from './freshness.ts'
import { exchange, originOf } from './http.ts'
import { Job, type JobResult } from './job.ts'
import { JobQueue } from './queue.ts'
import { DiskStore } from './store.ts'
import type { FetchLock, FetchOutcome, FetchPoolStats, FetchedResource, ResourceLoader } from './types.ts'

export interface FetchPoolOptions {
  /** Persistence directory, e.g. `<cache.directory>/fetch`; created if missing. */
  readonly directory: string
  readonly logger?: Logger
  /** Clock for freshness, backoff and circuit decisions; tests inject one. @default Date.now */
  readonly now?: () => number
  /** Cross-instance single-flight seam (not built yet: a later issue adds Redis). */
  readonly lock?: FetchLock
  /** Copies kept in memory and on disk; the least recently used beyond it are dropped from both. @default 1000 */
  readonly maxEntries?: number
  /** Body bytes kept in memory and on disk; must be at least `fetch.maxSize`. @default 256 MiB */
  readonly maxBytes?: number
  /** Jobs allowed to wait for a slot; a new job beyond it is refused at once. @default 1000 */
  readonly maxQueued?: number
}

/** Headers a 304 must not overwrite in the stored copy (RFC 9111 §3.2: they describe the 304 message, not the stored body). */
const keepOn304 = new Set(['content-length', 'content-encoding', 'content-range', 'content-type'])

/** Failures of jobs that never asked the origin: nothing to learn about it or the key. */
const notAsked = new Set<ErrorCode>(['LIVERY_ERR_CLOSED', 'LIVERY_ERR_FETCH_CIRCUIT_OPEN', 'LIVERY_ERR_FETCH_QUEUE_FULL'])

type Admission = { readonly job: Job } | { readonly reason: StaleReason, readonly error: LiveryError }

export class FetchPool {
  readonly #config: FetchConfig
  readonly #log: Logger
  readonly #now: () => number
  readonly #lock: FetchLock | undefined
  readonly #agent: Agent
  readonly #queue: JobQueue<Job>
  readonly #circuits: Circuits
  readonly #store: DiskStore
  readonly #jobs = new Map<string, Job>()
  readonly #entries: LRUCache<string, FetchedResource>
  /** Keys whose last job failed: not retried before `until`, and callers without a copy get `error` at once. */
  readonly #backoff: LRUCache<string, { until: number, error: LiveryError }>
  #opening: Promise<void> | undefined
  #closing: Promise<void> | undefined
  #closed = false
  #corruptFiles = 0
  #persistErrors = 0

  constructor (config: FetchConfig, opts: FetchPoolOptions) {
    const maxEntries = opts.maxEntries ?? 1000
    const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024
    const maxQueued = opts.maxQueued ?? 1000
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError(`FetchPool maxEntries must be a positive integer, got ${maxEntries}`)
    if (!Number.isInteger(maxQueued) || maxQueued < 0) throw new TypeError(`FetchPool maxQueued must be a non-negative integer, got ${maxQueued}`)
    if (!(maxBytes >= config.maxSize)) throw new TypeError(`FetchPool maxBytes (${maxBytes}) must be at least fetch.maxSize (${config.maxSize}), or no copy of the largest allowed resource fits`)
    this.#config = config
    this.#log = (opts.logger ?? silentLogger).child({ module: 'fetcher' })
    this.#now = opts.now ?? Date.now
    this.#lock = opts.lock
    this.#agent = new Agent({
      connections: config.concurrency,
      pipelining: 1,
      connect: { timeout: config.timeouts.connect },
      headersTimeout: config.timeouts.firstByte,
      bodyTimeout: config.timeouts.betweenBytes,
    })
    this.#queue = new JobQueue(config.concurrency, maxQueued)
    this.#circuits = new Circuits(config.circuit, this.#now)
    this.#store = new DiskStore(opts.directory)
    this.#entries = new LRUCache<string, FetchedResource>({
      max: maxEntries,
      maxSize: maxBytes,
      sizeCalculation: r => r.body.length + 1,
      dispose: (_r, key, reason) => {
        // Only an eviction drops the file; a replacement is followed by its own write.
        if (reason === 'evict') this.#persist(key, this.#store.remove(key))
      },
    })
    this.#backoff = new LRUCache({ max: maxEntries })
  }

  /**
   * Loads the persisted copies; corrupt files are logged, counted and removed.
   * Idempotent. Rejects with `LIVERY_ERR_CACHE_STORE` when the directory is
   * unusable; the pool still works then, without persistence.
   */
  open (): Promise<void> {
    if (this.#closed) return Promise.reject(liveryError('LIVERY_ERR_CLOSED', 'the fetch pool'))
    this.#opening ??= this.#load()
    return this.#opening
  }

  async #load (): Promise<void> {
    let loaded: Awaited<ReturnType<DiskStore['load']>>
    try {
      loaded = await this.#store.load()
    } catch (err) {
      throw wrapError('LIVERY_ERR_CACHE_STORE', err, `fetch directory ${this.#store.directory}`, err)
    }
    const { resources, corrupt } = loaded
    for (const { file, error } of corrupt) {
      this.#corruptFiles++
      this.#log.warn({ file, err: error }, 'persisted fetch entry is corrupt; removed')
      if (channels.corrupt.hasSubscribers) channels.corrupt.publish({ file, error })
    }
    // Oldest first, so if there are more than fit, the newest stay.
    resources.sort((a, b) => a.fetchedAt - b.fetchedAt)
    for (const r of resources) {
      // A copy fetched since start-up is newer than anything on disk.
      if (!this.#entries.has(r.url)) this.#entries.set(r.url, r)
    }
    this.#log.info({ entries: resources.length, corrupt: corrupt.length, directory: this.#store.directory }, 'fetch pool loaded persisted entries')
  }

  /**
   * The current copy of `url`, refreshed or fetched as needed within the
   * bounded waits. Rejects with a coded error when no copy can be had in
   * time (`LIVERY_ERR_FETCH_*`), or with `signal.reason` when the caller
   * gives up; giving up never aborts the shared job.
   */
  async get (url: string, opts: { signal?: AbortSignal } = {}): Promise<FetchOutcome> {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', 'the fetch pool')
    opts.signal?.throwIfAborted()
    const key = normalize(url)
    const now = this.#now()
    const entry = this.#entries.get(key)
    if (entry !== undefined && now < entry.freshUntil) return { resource: entry, state: 'fresh' }
    const cfg = this.#config
    const staleFor = entry === undefined ? Infinity : now - entry.freshUntil
    const revalidating = staleFor < cfg.staleWhileRevalidate
    // The copy we may fall back on when a new one cannot be had in time.
    const fallback = staleFor < Math.max(cfg.staleWhileRevalidate, cfg.staleIfError) ? entry : undefined
    const admission = this.#admit(key, now)
    if (!('job' in admission)) {
      if (fallback !== undefined) return this.#stale(fallback, admission.reason)
      throw admission.error
    }
    const job = admission.job
    const limit = revalidating ? cfg.wait : cfg.missWait
    const budget = limit - (now - job.startedAt)
    const r = budget > 0 ? await this.#wait(job, budget, opts.signal) : 'timeout'
    if (r === 'timeout') {
      if (fallback !== undefined) return this.#stale(fallback, 'wait')
      throw liveryError('LIVERY_ERR_FETCH_WAIT', key, `${limit} ms of the job's start`)
    }
    if (r.ok) return { resource: r.resource, state: entry === undefined ? 'fetched' : 'refreshed' }
    if (fallback !== undefined) return this.#stale(fallback, 'error')
    throw r.error
  }

  /**
   * Refreshes `url` now even if its copy is fresh (a conditional request
   * when there is one), waiting for the job itself rather than `fetch.wait`:
   * the worker tier refreshes themes ahead of their expiry this way, so the
   * request path finds them fresh. Rejects with the job's coded error (or
   * the backoff or circuit that kept it from running); the old copy stays.
   */
  async refresh (url: string): Promise<FetchOutcome> {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', 'the fetch pool')
    const key = normalize(url)
    const admission = this.#admit(key, this.#now())
    if (!('job' in admission)) throw admission.error
    const r = await admission.job.result
    if (r.ok) return { resource: r.resource, state: 'refreshed' }
    throw r.error
  }

  /** The URLs the pool holds copies of. */
  urls (): string[] {
    return [...this.#entries.keys()]
  }

  /** The pool as the theme engine's loader. */
  readonly loader: ResourceLoader = async (url, signal) => {
    const { resource } = await this.get(url, { signal })
    return { body: resource.body, contentType: resource.headers['content-type'], version: resource.version }
  }

  /** The stored copy, fresh or not, without starting anything. */
  peek (url: string): FetchedResource | undefined {
    let key: string
    try {
      key = normalize(url)
    } catch {
      // An unparsable URL can have no copy.
      return undefined
    }
    return this.#entries.peek(key)
  }

  stats (): FetchPoolStats {
    return {
      jobsInFlight: this.#queue.running,
      jobsQueued: this.#queue.queued,
      circuits: this.#circuits.snapshot(),
      entries: this.#entries.size,
      bytes: this.#entries.calculatedSize,
      corruptFiles: this.#corruptFiles,
      persistErrors: this.#persistErrors,
    }
  }

  /**
   * Graceful: new calls fail with `LIVERY_ERR_CLOSED`, queued jobs are
   * cancelled, running jobs finish (within their total deadline) and their
   * copies are written, then the Agent closes.
   */
  close (): Promise<void> {
    this.#closed = true
    this.#closing ??= (async () => {
      this.#cancelQueued(liveryError('LIVERY_ERR_CLOSED', 'the fetch pool'))
      await Promise.all([...this.#jobs.values()].map(j => j.result))
      await this.#store.flush()
      await this.#agent.close()
    })()
    return this.#closing
  }

  /** Now: every job is aborted, sockets are destroyed; pending disk writes still finish. */
  async destroy (err?: Error): Promise<void> {
    this.#closed = true
    const reason = err === undefined ? liveryError('LIVERY_ERR_CLOSED', 'the fetch pool') : wrapError('LIVERY_ERR_CLOSED', err, 'the fetch pool')
    this.#cancelQueued(reason)
    for (const job of this.#jobs.values()) job.controller.abort(reason)
    await Promise.all([...this.#jobs.values()].map(j => j.result))
    if (!this.#agent.destroyed) await this.#agent.destroy(err ?? null)
    await this.#store.flush()
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.close()
  }

  #admit (key: string, now: number): Admission {
    const running = this.#jobs.get(key)
    if (running !== undefined) {
      if (channels.deduplicated.hasSubscribers) channels.deduplicated.publish({ url: key })
      return { job: running }
    }
    const backoff = this.#backoff.get(key)
    if (backoff !== undefined && now < backoff.until) return { reason: 'backoff', error: backoff.error }
    const origin = originOf(key)
    const admit = this.#circuits.admit(origin)
    if (admit === 'no') return { reason: 'circuit', error: this.#circuitError(origin) }
    const job = new Job(key, origin, now, admit === 'probe', this.#config.timeouts.total, j => { this.#run(j) })
    // The deadline (or destroy) ends the job here and now: a queued job leaves
    // the queue; a running one is settled even if its work (a `lock` hook,
    // say) ignores the signal, so a slot can never be held past the deadline.
    job.signal.addEventListener('abort', () => {
      if (job.started || this.#queue.cancel(job)) this.#finish(job, { ok: false, error: toLivery(job.signal.reason, key) })
    }, { once: true })
    this.#jobs.set(key, job)
    if (!this.#queue.submit(job)) {
      const error = liveryError('LIVERY_ERR_FETCH_QUEUE_FULL', key, this.#queue.queued)
      this.#finish(job, { ok: false, error })
      return { reason: 'queue', error }
    }
    return { job }
  }

  #wait (job: Job, budget: number, signal: AbortSignal | undefined): Promise<JobResult | 'timeout'> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => { cleanup(); reject(signal?.reason) }
      const timer = setTimeout(() => { cleanup(); resolve('timeout') }, budget)
      timer.unref()
      const cleanup = (): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      void job.result.then(r => { cleanup(); resolve(r) })
    })
  }

  #stale (resource: FetchedResource, reason: StaleReason): FetchOutcome {
    if (channels.staleServed.hasSubscribers) channels.staleServed.publish({ url: resource.url, reason })
    return { resource, state: 'stale' }
  }

  #run (job: Job): void {
    if (channels.jobStart.hasSubscribers) channels.jobStart.publish({ url: job.key, origin: job.origin, probe: job.probe })
    // The circuit may have opened while this job waited in the queue.
    if (!job.probe && this.#circuits.openUntil(job.origin) !== undefined) {
      this.#finish(job, { ok: false, error: this.#circuitError(job.origin) })
      return
    }
    const stored = this.#entries.peek(job.key)
    let originAnswered = false
    const fetchOnce = async (): Promise<FetchedResource> => {
      const r = await exchange(this.#agent, job.key, stored, job.signal, this.#config)
      if (r.kind === 'bad-status') {
        // A 4xx is the origin working and the URL being wrong: it must not open the circuit.
        originAnswered = r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429
        throw liveryError('LIVERY_ERR_FETCH_STATUS', job.key, r.status)
      }
      const at = this.#now()
      if (r.kind === 'not-modified' && stored !== undefined) {
        const headers: Record<string, string> = { ...stored.headers }
        for (const [name, value] of Object.entries(r.headers)) if (!keepOn304.has(name)) headers[name] = value
        const version = strongEtag(headers) ?? stored.version
        return { ...stored, headers, version, fetchedAt: at, freshUntil: at + freshnessLifetime(headers, at, this.#config) }
      }
      if (r.kind !== 'ok') throw liveryError('LIVERY_ERR_FETCH_STATUS', job.key, 304)
      const version = strongEtag(r.headers) ?? `sha256:${createHash('sha256').update(r.body).digest('hex')}`
      return { url: job.key, status: r.status, headers: r.headers, body: r.body, version, fetchedAt: at, freshUntil: at + freshnessLifetime(r.headers, at, this.#config) }
    }
    const work = this.#lock === undefined ? fetchOnce() : this.#lock.run(job.key, job.signal, fetchOnce)
    work.then(
      resource => { this.#finish(job, { ok: true, resource }) },
      (err: unknown) => {
        const error = toLivery(err, job.key)
        this.#finish(job, { ok: false, error }, originAnswered || hasCode(error, 'LIVERY_ERR_FETCH_TOO_LARGE'))
      },
    )
  }

  /** Records a job's outcome: copy, backoff, circuit, persistence, metrics; frees its key and slot. */
  #finish (job: Job, r: JobResult, originAnswered = false): void {
    if (!job.settle(r)) return
    if (this.#jobs.get(job.key) === job) this.#jobs.delete(job.key)
    if (r.ok) {
      this.#entries.set(job.key, r.resource)
      this.#backoff.delete(job.key)
      this.#circuits.success(job.origin)
      this.#persist(job.key, this.#store.write(r.resource))
    } else if (!job.started || notAsked.has(r.error.code)) {
      // A job that timed out in the queue says nothing about its own origin
      // (the slots may be held by another one), so no backoff and no circuit count.
      if (job.probe) this.#circuits.release(job.origin)
    } else {
      this.#backoff.set(job.key, { until: this.#now() + this.#config.minTtl, error: r.error })
      if (originAnswered) this.#circuits.success(job.origin)
      else this.#circuits.failure(job.origin)
      this.#log.warn({ url: job.key, err: r.error }, 'fetch failed; stale copy served where there is one')
      if (channels.error.hasSubscribers) channels.error.publish({ url: job.key, origin: job.origin, code: r.error.code, error: r.error })
    }
    if (channels.jobEnd.hasSubscribers) channels.jobEnd.publish({ url: job.key, origin: job.origin, ok: r.ok, durationMs: this.#now() - job.startedAt })
    if (job.started) this.#queue.done()
  }

  #persist (url: string, op: Promise<void>): void {
    op.catch((err: unknown) => {
      this.#persistErrors++
      this.#log.warn({ url, err, directory: this.#store.directory }, 'cannot persist fetch entry; the in-memory copy is still used')
      if (channels.persistError.hasSubscribers) channels.persistError.publish({ url, error: err })
    })
  }

  #cancelQueued (reason: LiveryError): void {
    for (const job of this.#queue.drain()) this.#finish(job, { ok: false, error: reason })
  }

  #circuitError (origin: string): LiveryError {
    const until = this.#circuits.openUntil(origin)
    return liveryError('LIVERY_ERR_FETCH_CIRCUIT_OPEN', origin, until === undefined ? 'its probe ends' : new Date(until).toISOString())
  }
}

function normalize (url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch (err) {
    throw wrapError('LIVERY_ERR_FETCH', err, url, 'not an absolute URL')
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw liveryError('LIVERY_ERR_FETCH', url, 'only http and https URLs can be fetched')
  // The fragment never reaches the server, so it must not split the cache.
  u.hash = ''
  return u.href
}

function strongEtag (headers: Readonly<Record<string, string>>): string | undefined {
  const etag = headers.etag?.trim()
  return etag !== undefined && etag.startsWith('"') ? etag : undefined
}

function toLivery (err: unknown, url: string): LiveryError {
  return isLiveryError(err) ? err : wrapError('LIVERY_ERR_FETCH', err, url, err)
}
