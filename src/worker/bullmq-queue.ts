/**
 * The worker tier's queue on Redis: one BullMQ queue per job kind (so queue
 * depth by kind is one call, and the HPA can scale on it), consumed by
 * `livery worker` processes on any number of hosts. BullMQ's job lock is
 * what keeps two workers from running the same job at once: the worker
 * holding a job renews its lock, and only a job whose lock lapsed (its worker
 * died) is handed to another.
 *
 * Semantics are those of `queue.ts`. Jobs are removed once they complete or
 * fail for good, so a key can be enqueued again afterwards; a job that failed
 * its last attempt is copied to a capped Redis list first (the dead letters),
 * from inside the processor, so it is recorded even if the process dies
 * right after.
 *
 * The connections are `@redis/client` instances (BullMQ 6 adapts them), so
 * Livery keeps one Redis client library.
 */
import { createRequire } from 'node:module'
import type * as BullMQ from 'bullmq'
import type { Queue, Worker } from 'bullmq'
import { redis } from '../redis-client.ts'
import { liveryError } from '../errors.ts'
import { formatDuration } from '../config/units.ts'
import { silentLogger, type Logger } from '../log.ts'
import { publishJob } from './channels.ts'
import { jobId, type DeadLetter, type JobHandler, type QueueDepth, type QueueOptions, type WorkQueue } from './queue.ts'

export interface BullQueueOptions extends QueueOptions {
  readonly kind: string
  readonly url: string
  /** Key prefix, e.g. `livery:` + `worker`; BullMQ adds `:<kind>:…`. */
  readonly prefix: string
  readonly logger?: Logger
  /** How long a worker's job lock lasts without renewal, ms; a dead worker's job is retried after it. @default 30000 */
  readonly lockDuration?: number
  /** How long close() lets running jobs finish before it stops waiting; their locks lapse and another worker retries them. @default 30000 */
  readonly closeTimeout?: number
}

const requireDep = createRequire(import.meta.url)
let bullmqModule: typeof BullMQ | undefined

/** BullMQ, loaded on first use: a gateway whose worker tier runs in-process never loads it (see `redis()` in src/redis-client.ts). */
function bullmq (): typeof BullMQ {
  bullmqModule ??= requireDep('bullmq') as typeof BullMQ
  return bullmqModule
}

function newClient (url: string) {
  return redis().createClient({ url })
}

type Client = ReturnType<typeof newClient>

/** Longest wait on Redis for a producer-side call. */
const queueTimeout = 2_000

export class BullQueue<D> implements WorkQueue<D> {
  readonly kind: string
  readonly #opts: BullQueueOptions
  readonly #log: Logger
  #queue: Queue | undefined
  readonly #deadKey: string
  readonly #clients: Client[] = []
  #dead: Client | undefined
  #worker: Worker | undefined
  #closing: Promise<void> | undefined
  #destroyed = false

  constructor (opts: BullQueueOptions) {
    this.kind = opts.kind
    this.#opts = opts
    this.#log = (opts.logger ?? silentLogger).child({ module: 'worker', kind: opts.kind })
    this.#deadKey = `${opts.prefix}:${opts.kind}:dead-letters`
  }

  /** Connected on first use: a gateway that never enqueues opens no connection for it. */
  #producer (): Queue {
    if (this.#queue === undefined) {
      this.#queue = new (bullmq().Queue)(this.kind, { connection: this.#client(), prefix: this.#opts.prefix })
      this.#queue.on('error', (err: Error) => { this.#log.warn({ err: err.message }, 'job queue connection error') })
    }
    return this.#queue
  }

  enqueue (key: string, data: D): Promise<boolean> {
    return this.#bounded(this.#enqueue(key, data), 'enqueue')
  }

  async #enqueue (key: string, data: D): Promise<boolean> {
    if (this.#closing !== undefined) throw liveryError('LIVERY_ERR_CLOSED', `the ${this.kind} queue`)
    const id = jobId(this.kind, key)
    // BullMQ's add is itself a no-op for an id that exists; asking first only
    // lets us tell the caller (and the metrics) which it was.
    const existing = await this.#producer().getJob(id)
    if (existing !== undefined && existing !== null) {
      publishJob({ kind: this.kind, key, event: 'deduplicated', attempt: 0 })
      return false
    }
    await this.#producer().add(this.kind, { key, data }, {
      jobId: id,
      attempts: this.#opts.attempts,
      backoff: { type: 'exponential', delay: this.#opts.backoff },
      removeOnComplete: true,
      removeOnFail: true,
    })
    publishJob({ kind: this.kind, key, event: 'enqueued', attempt: 0 })
    return true
  }

  process (handler: JobHandler<D>, opts: { readonly concurrency: number }): void {
    if (this.#worker !== undefined) throw new TypeError(`the ${this.kind} queue already has a consumer`)
    const rate = this.#opts.rate
    const started = new Map<string, number>()
    this.#worker = new (bullmq().Worker)<{ key: string, data: D }>(this.kind, async (job, _token, signal) => {
      const attempt = job.attemptsStarted
      const { key, data } = job.data
      started.set(key, performance.now())
      publishJob({ kind: this.kind, key, event: 'start', attempt })
      try {
        await handler({ kind: this.kind, key, data, attempt }, signal ?? new AbortController().signal)
      } catch (err) {
        // Recorded before BullMQ learns of the failure, so a crash right after cannot lose it.
        if (attempt >= this.#opts.attempts) {
          await this.#deadLetter({ kind: this.kind, key, data, attempts: attempt, error: messageOf(err), at: Date.now() })
        }
        throw err
      }
    }, {
      connection: this.#client(),
      prefix: this.#opts.prefix,
      concurrency: opts.concurrency,
      lockDuration: this.#opts.lockDuration ?? 30_000,
      // Spaced starts rather than bursts: one job every 1/rate s across all workers (BullMQ keeps the limiter in Redis).
      ...(rate > 0 ? { limiter: { max: 1, duration: Math.max(1, Math.round(1000 / rate)) } } : {}),
    })
    // Announced once BullMQ has moved the job on, so whoever listens sees the queue's new state.
    this.#worker.on('completed', job => {
      const key = job.data.key
      const t0 = started.get(key)
      started.delete(key)
      const durationMs = t0 === undefined ? 0 : performance.now() - t0
      this.#log.debug({ key, attempt: job.attemptsStarted, durationMs: Math.round(durationMs) }, 'job done')
      publishJob({ kind: this.kind, key, event: 'done', attempt: job.attemptsStarted, durationMs })
    })
    this.#worker.on('failed', (job, err) => {
      if (job === undefined) return
      const key = job.data.key
      started.delete(key)
      const attempt = job.attemptsStarted
      const error = messageOf(err)
      if (attempt >= this.#opts.attempts) {
        this.#log.warn({ key, attempts: attempt, err: error }, 'job failed its last attempt; dead-lettered')
        publishJob({ kind: this.kind, key, event: 'dead', attempt, error })
      } else {
        this.#log.info({ key, attempt, err: error }, 'job failed; retrying')
        publishJob({ kind: this.kind, key, event: 'retry', attempt, error })
      }
    })
    this.#worker.on('error', (err: Error) => { this.#log.warn({ err: err.message }, 'job worker connection error') })
  }

  depth (): Promise<QueueDepth> {
    return this.#bounded(this.#depth(), 'depth')
  }

  async #depth (): Promise<QueueDepth> {
    const c = await this.#producer().getJobCounts('waiting', 'delayed', 'active', 'prioritized')
    return { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), delayed: c.delayed ?? 0, active: c.active ?? 0 }
  }

  deadLetters (): Promise<readonly DeadLetter[]> {
    return this.#bounded(this.#deadLetters(), 'dead-letters')
  }

  async #deadLetters (): Promise<readonly DeadLetter[]> {
    const client = await this.#deadClient()
    const raw = await client.lRange(this.#deadKey, 0, -1)
    return raw.map(s => JSON.parse(s) as DeadLetter)
  }

  /** The worker stops fetching jobs and finishes the running ones; then the connections close. Idempotent. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      const worker = this.#worker
      if (worker !== undefined && this.#destroyed) {
        await worker.close(true)
      } else if (worker !== undefined) {
        let timer: NodeJS.Timeout | undefined
        const timedOut = new Promise<'timeout'>(resolve => { timer = setTimeout(() => resolve('timeout'), this.#opts.closeTimeout ?? 30_000) })
        const r = await Promise.race([worker.close(), timedOut])
        clearTimeout(timer)
        if (r === 'timeout') {
          this.#log.warn('jobs still running at shutdown; they go back to the queue once their lock lapses')
          await worker.close(true)
        }
      }
      await this.#queue?.close()
      for (const c of [...this.#clients, this.#dead]) {
        if (c?.isOpen === true) await c.close().catch(() => { /* already gone: nothing left to flush */ })
      }
    })()
    return this.#closing
  }

  /** Aborts the running jobs (they go back to the queue once their lock lapses) and closes without waiting for them. */
  destroy (): Promise<void> {
    this.#destroyed = true
    this.#worker?.cancelAllJobs(`the ${this.kind} queue is being destroyed`)
    return this.close()
  }

  /** Deletes every key of this queue (tests, `livery worker --obliterate` is not offered). */
  async obliterate (): Promise<void> {
    await this.#producer().obliterate({ force: true })
    const client = await this.#deadClient()
    await client.del(this.#deadKey)
  }

  /** A Redis that is down makes BullMQ wait for it; callers (a purge, a scrape, an admin route) get an error instead. */
  #bounded<T> (work: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(liveryError('LIVERY_ERR_CACHE_TIMEOUT', `the ${this.kind} job queue (${what})`, formatDuration(queueTimeout))), queueTimeout)
      timer.unref()
    })
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer))
  }

  async #deadLetter (letter: DeadLetter): Promise<void> {
    const client = await this.#deadClient()
    await client.multi().lPush(this.#deadKey, JSON.stringify(letter)).lTrim(this.#deadKey, 0, this.#opts.maxDeadLetters - 1).exec()
  }

  async #deadClient (): Promise<Client> {
    if (this.#dead === undefined) {
      this.#dead = newClient(this.#opts.url)
      this.#dead.on('error', (err: Error) => { this.#log.debug({ err: err.message }, 'dead-letter connection error') })
      await this.#dead.connect()
    }
    return this.#dead
  }

  #client (): Client {
    const c = newClient(this.#opts.url)
    c.on('error', (err: Error) => { this.#log.debug({ err: err.message }, 'job queue redis error') })
    this.#clients.push(c)
    return c
  }
}

function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
