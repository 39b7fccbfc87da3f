/**
 * The pool's job queue: at most `limit` jobs hold a slot, the rest wait in
 * FIFO order, and at most `maxQueued` wait. The pool has one job per key, so
 * the queue is as long as the number of distinct URLs being fetched at once;
 * past `maxQueued` a new job is refused at once (the caller then gets its
 * stale copy or `LIVERY_ERR_FETCH_QUEUE_FULL`) rather than waiting behind a
 * backlog it could never get through within its wait.
 */

export interface Startable {
  start (): void
}

export class JobQueue<T extends Startable> {
  readonly #limit: number
  readonly #maxQueued: number
  #running = 0
  // A Set keeps insertion (FIFO) order and removes a cancelled job in O(1).
  readonly #waiting = new Set<T>()

  constructor (limit: number, maxQueued: number) {
    this.#limit = limit
    this.#maxQueued = maxQueued
  }

  get running (): number { return this.#running }
  get queued (): number { return this.#waiting.size }

  /** Starts `job` now or queues it; false when the queue is full. */
  submit (job: T): boolean {
    if (this.#running < this.#limit) {
      this.#running++
      job.start()
      return true
    }
    if (this.#waiting.size >= this.#maxQueued) return false
    this.#waiting.add(job)
    return true
  }

  /** Removes a job that has not started; false when it already holds a slot. */
  cancel (job: T): boolean {
    return this.#waiting.delete(job)
  }

  /** A started job gives its slot back; the oldest waiting job takes it. */
  done (): void {
    this.#running--
    const next = this.#waiting.values().next()
    if (next.done === true) return
    this.#waiting.delete(next.value)
    this.#running++
    next.value.start()
  }

  /** Empties the queue, returning the jobs that never started. */
  drain (): T[] {
    const jobs = [...this.#waiting]
    this.#waiting.clear()
    return jobs
  }
}
