/**
 * The worker tier's job queue (DESIGN §7): one queue per job kind, two
 * implementations behind this interface — BullMQ on Redis (`bullmq-queue.ts`)
 * when `cache.redis` is configured, consumed by `livery worker` processes,
 * and an in-process runner (`memory-queue.ts`) with the same semantics, so
 * `npm start` needs no Redis.
 *
 * Semantics both keep:
 * - a job is keyed: its id is kind + key, and enqueueing a key that is
 *   already waiting, delayed for a retry or running is a no-op (false);
 * - a failed job is retried `attempts` times in all, with exponential
 *   backoff (`backoff`, 2×, 4×, …);
 * - a job that fails its last attempt goes on a bounded dead-letter list an
 *   operator reads (`livery worker --dead-letters`, `/_livery/status`);
 * - `close()` stops taking jobs and lets running ones finish: none is lost
 *   (BullMQ hands unfinished ones back to Redis) and none runs twice at once.
 *
 * Every step is published on `livery:worker:job` (see `channels.ts`); the
 * metrics and the tests listen there.
 */

export interface Job<D> {
  readonly kind: string
  readonly key: string
  readonly data: D
  /** 1 on the first run. */
  readonly attempt: number
}

/** A job's work. Throwing (or rejecting) fails the attempt; `signal` aborts on destroy(). */
export type JobHandler<D> = (job: Job<D>, signal: AbortSignal) => Promise<void>

export interface DeadLetter {
  readonly kind: string
  readonly key: string
  readonly data: unknown
  readonly attempts: number
  /** The last attempt's error message. */
  readonly error: string
  /** When it was dead-lettered, ms since the epoch. */
  readonly at: number
}

export interface QueueDepth {
  /** Jobs ready to run. */
  readonly waiting: number
  /** Jobs waiting for a retry (or a rate-limit slot). */
  readonly delayed: number
  /** Jobs running now. */
  readonly active: number
}

export interface QueueOptions {
  /** Runs per job, the first included. @default 5 */
  readonly attempts: number
  /** Delay before the first retry, ms; doubles for each later one. @default 1000 */
  readonly backoff: number
  /** Jobs started per second over all consumers (0: no limit); protects the CMS. */
  readonly rate: number
  /** Dead letters kept, oldest dropped first. @default 1000 */
  readonly maxDeadLetters: number
}

export interface WorkQueue<D> {
  readonly kind: string
  /** Adds a job; resolves false when the same key is already waiting or running. */
  enqueue (key: string, data: D): Promise<boolean>
  /** Starts consuming with `concurrency` jobs at once in this process. Once per queue. */
  process (handler: JobHandler<D>, opts: { readonly concurrency: number }): void
  depth (): Promise<QueueDepth>
  deadLetters (): Promise<readonly DeadLetter[]>
  /** Stops taking jobs, waits for the running ones. Idempotent. */
  close (): Promise<void>
  /** Aborts the running jobs' signals and closes without waiting for them. */
  destroy (): Promise<void>
}

/** The id of a job: kind and key. BullMQ refuses ':' in ids, so the key is URI-encoded. */
export function jobId (kind: string, key: string): string {
  return `${kind}.${encodeURIComponent(key)}`
}

/** The delay before retry number `retry` (1 for the first retry). */
export function backoffDelay (backoff: number, retry: number): number {
  return backoff * 2 ** Math.max(0, retry - 1)
}
