/**
 * The in-process runner: the worker tier's queue without Redis (see
 * `queue.ts` for the semantics it shares with BullMQ). Jobs live in this
 * process only, so a restart forgets the waiting ones; that is the price of
 * needing no Redis, and why a deployment with several instances configures
 * one.
 */
import { liveryError } from '../errors.ts'
import { silentLogger, type Logger } from '../log.ts'
import { publishJob } from './channels.ts'
import { backoffDelay, type DeadLetter, type JobHandler, type QueueDepth, type QueueOptions, type WorkQueue } from './queue.ts'

export interface MemoryQueueOptions extends QueueOptions {
  readonly kind: string
  /** Jobs waiting (or delayed) at most; enqueue() beyond it resolves false. @default 10000 */
  readonly maxWaiting?: number
  readonly logger?: Logger
}

interface Entry<D> {
  readonly key: string
  readonly data: D
  attempt: number
  state: 'waiting' | 'delayed' | 'active'
  timer?: NodeJS.Timeout
}

export class MemoryQueue<D> implements WorkQueue<D> {
  readonly kind: string
  readonly #opts: MemoryQueueOptions
  readonly #log: Logger
  readonly #maxWaiting: number
  /** Every job by key, whatever its state: the deduplication. */
  readonly #jobs = new Map<string, Entry<D>>()
  /** Ready jobs in FIFO order. */
  readonly #ready = new Set<Entry<D>>()
  readonly #dead: DeadLetter[] = []
  readonly #running = new Set<Promise<void>>()
  readonly #abort = new AbortController()
  #handler: JobHandler<D> | undefined
  #concurrency = 0
  #active = 0
  /** Earliest time the rate limit lets the next job start. */
  #nextStart = 0
  #rateTimer: NodeJS.Timeout | undefined
  #closed = false
  #closing: Promise<void> | undefined

  constructor (opts: MemoryQueueOptions) {
    this.kind = opts.kind
    this.#opts = opts
    this.#log = (opts.logger ?? silentLogger).child({ module: 'worker', kind: opts.kind })
    this.#maxWaiting = opts.maxWaiting ?? 10_000
  }

  enqueue (key: string, data: D): Promise<boolean> {
    if (this.#closed) return Promise.reject(liveryError('LIVERY_ERR_CLOSED', `the ${this.kind} queue`))
    if (this.#jobs.has(key)) {
      publishJob({ kind: this.kind, key, event: 'deduplicated', attempt: 0 })
      return Promise.resolve(false)
    }
    if (this.#jobs.size - this.#active >= this.#maxWaiting) {
      this.#log.warn({ key, maxWaiting: this.#maxWaiting }, 'job queue full; job dropped')
      return Promise.resolve(false)
    }
    const entry: Entry<D> = { key, data, attempt: 0, state: 'waiting' }
    this.#jobs.set(key, entry)
    this.#ready.add(entry)
    publishJob({ kind: this.kind, key, event: 'enqueued', attempt: 0 })
    this.#pump()
    return Promise.resolve(true)
  }

  process (handler: JobHandler<D>, opts: { readonly concurrency: number }): void {
    if (this.#handler !== undefined) throw new TypeError(`the ${this.kind} queue already has a consumer`)
    if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) throw new TypeError(`concurrency must be a positive integer, got ${opts.concurrency}`)
    this.#handler = handler
    this.#concurrency = opts.concurrency
    this.#pump()
  }

  depth (): Promise<QueueDepth> {
    let delayed = 0
    for (const e of this.#jobs.values()) if (e.state === 'delayed') delayed++
    return Promise.resolve({ waiting: this.#ready.size, delayed, active: this.#active })
  }

  deadLetters (): Promise<readonly DeadLetter[]> {
    return Promise.resolve([...this.#dead])
  }

  /** Stops starting jobs (waiting and delayed ones are dropped), waits for running ones. */
  close (): Promise<void> {
    this.#closed = true
    this.#closing ??= (async () => {
      clearTimeout(this.#rateTimer)
      for (const e of this.#jobs.values()) clearTimeout(e.timer)
      this.#ready.clear()
      while (this.#running.size > 0) await Promise.allSettled([...this.#running])
      this.#jobs.clear()
    })()
    return this.#closing
  }

  /** Aborts running jobs' signals, then closes. */
  destroy (): Promise<void> {
    this.#abort.abort(liveryError('LIVERY_ERR_CLOSED', `the ${this.kind} queue`))
    return this.close()
  }

  #pump (): void {
    const handler = this.#handler
    if (handler === undefined || this.#closed) return
    while (this.#active < this.#concurrency && this.#ready.size > 0) {
      const rate = this.#opts.rate
      if (rate > 0) {
        const now = Date.now()
        if (now < this.#nextStart) {
          this.#rateTimer ??= setTimeout(() => { this.#rateTimer = undefined; this.#pump() }, this.#nextStart - now)
          this.#rateTimer.unref()
          return
        }
        // Jobs are spaced evenly rather than bursting `rate` at once: the CMS sees a steady trickle.
        this.#nextStart = Math.max(now, this.#nextStart) + 1000 / rate
      }
      const entry = this.#ready.values().next().value as Entry<D>
      this.#ready.delete(entry)
      this.#start(entry, handler)
    }
  }

  #start (entry: Entry<D>, handler: JobHandler<D>): void {
    entry.state = 'active'
    entry.attempt++
    this.#active++
    const started = performance.now()
    publishJob({ kind: this.kind, key: entry.key, event: 'start', attempt: entry.attempt })
    const run = (async () => {
      try {
        await handler({ kind: this.kind, key: entry.key, data: entry.data, attempt: entry.attempt }, this.#abort.signal)
        this.#jobs.delete(entry.key)
        publishJob({ kind: this.kind, key: entry.key, event: 'done', attempt: entry.attempt, durationMs: performance.now() - started })
      } catch (err) {
        this.#failed(entry, err)
      } finally {
        this.#active--
      }
    })()
    this.#running.add(run)
    void run.finally(() => {
      this.#running.delete(run)
      this.#pump()
    })
  }

  #failed (entry: Entry<D>, err: unknown): void {
    const error = err instanceof Error ? err.message : String(err)
    if (entry.attempt < this.#opts.attempts && !this.#closed) {
      entry.state = 'delayed'
      const delay = backoffDelay(this.#opts.backoff, entry.attempt)
      entry.timer = setTimeout(() => {
        entry.timer = undefined
        entry.state = 'waiting'
        this.#ready.add(entry)
        this.#pump()
      }, delay)
      entry.timer.unref()
      this.#log.info({ key: entry.key, attempt: entry.attempt, retryIn: delay, err: error }, 'job failed; retrying')
      publishJob({ kind: this.kind, key: entry.key, event: 'retry', attempt: entry.attempt, error })
      return
    }
    this.#jobs.delete(entry.key)
    if (this.#closed && entry.attempt < this.#opts.attempts) return
    this.#dead.push({ kind: this.kind, key: entry.key, data: entry.data, attempts: entry.attempt, error, at: Date.now() })
    if (this.#dead.length > this.#opts.maxDeadLetters) this.#dead.shift()
    this.#log.warn({ key: entry.key, attempts: entry.attempt, err: error }, 'job failed its last attempt; dead-lettered')
    publishJob({ kind: this.kind, key: entry.key, event: 'dead', attempt: entry.attempt, error })
  }
}
