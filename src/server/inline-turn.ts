/**
 * A bound on the inline transforms one event-loop turn runs (issue 15: event
 * loop pauses of 113 ms under a cold themed-miss load). Each small page is
 * themed inline in about a millisecond, but the upstream answers for 50
 * connections arrive in one poll phase, and every one of them was themed
 * before the loop could read a socket or fire a timer: 50 transforms, one
 * pause.
 *
 * `LoopTurn.run()` runs a job at once while the turn has budget left, and
 * otherwise queues it; the queue is drained from a check-phase callback
 * (setImmediate), again up to the budget, so I/O is polled between batches.
 * Between two check phases inline transforms take at most the budget plus
 * the one that crossed it. Jobs run in arrival order: once anything waits,
 * new jobs queue behind it. The queue holds one entry per page being themed,
 * so the request pool's admission bounds it.
 *
 * The event loop is the process's, so all sites share one `LoopTurn`
 * (`loopTurn`); tests make their own with an injected clock.
 */

export interface LoopTurnOptions {
  /** Inline work one turn may run before later jobs wait for the next turn, ms. */
  readonly budget: number
  /** @default performance.now */
  readonly now?: () => number
}

/** The budget of the process-wide turn: a fifth of the 50 ms longest pause issue 15 allows, leaving room for the rest of the turn's work. */
export const defaultTurnBudget = 10

interface Queued {
  readonly job: () => unknown
  readonly resolve: (value: unknown) => void
  readonly reject: (err: unknown) => void
}

export class LoopTurn {
  readonly #budget: number
  readonly #now: () => number
  readonly #queue: Queued[] = []
  #head = 0
  /** ms of inline work since the last check phase. */
  #spent = 0
  #scheduled = false

  constructor (opts: LoopTurnOptions) {
    this.#budget = opts.budget
    this.#now = opts.now ?? (() => performance.now())
  }

  /** `job()` now, when this turn has budget left and nothing waits; otherwise a promise of it in a later turn. */
  run<T> (job: () => T): T | Promise<T> {
    if (this.#head === this.#queue.length && this.#spent < this.#budget) {
      this.#schedule()
      return this.#timed(job)
    }
    this.#schedule()
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ job, resolve: resolve as (value: unknown) => void, reject })
    })
  }

  /** Jobs waiting for a later turn (tests, status). */
  get waiting (): number {
    return this.#queue.length - this.#head
  }

  #timed<T> (job: () => T): T {
    const started = this.#now()
    try {
      return job()
    } finally {
      this.#spent += this.#now() - started
    }
  }

  #schedule (): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(this.#turn)
  }

  readonly #turn = (): void => {
    this.#scheduled = false
    this.#spent = 0
    while (this.#head < this.#queue.length && this.#spent < this.#budget) {
      const q = this.#queue[this.#head]
      this.#queue[this.#head++] = undefined as unknown as Queued
      try {
        q.resolve(this.#timed(q.job))
      } catch (err) {
        q.reject(err)
      }
    }
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0
      this.#head = 0
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      // Under a load that never lets the queue empty, drop the spent slots in one step now and then.
      this.#queue.splice(0, this.#head)
      this.#head = 0
    }
    // Another check phase resets what this one spent, or drains what is left.
    if (this.#spent > 0 || this.#head < this.#queue.length) this.#schedule()
  }
}

/** The process's event loop: every site's inline transforms share it. */
export const loopTurn = new LoopTurn({ budget: defaultTurnBudget })
