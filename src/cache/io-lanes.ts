/**
 * Ordering and concurrency for a tier's file operations: operations on one
 * key run in the order they were started (a put, then the delete that follows
 * it), operations on different keys run in parallel, at most `concurrency`
 * at once. The disk tier used to run every mutation on one serial queue, five
 * file-system calls each, and dropped 85-90% of the writes of a burst
 * (issue 15); most of that time was spent waiting on the thread pool for
 * other keys' calls.
 *
 * The per-key map always empties: a lane is deleted when its last operation
 * settles (STYLE §2.11).
 */
export class IoLanes {
  readonly #concurrency: number
  readonly #lanes = new Map<string, Promise<unknown>>()
  readonly #waiting: Array<() => void> = []
  #running = 0

  constructor (concurrency: number) {
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw new TypeError(`IoLanes concurrency must be a positive integer, got ${String(concurrency)}`)
    }
    this.#concurrency = concurrency
  }

  /** Runs `fn` after the earlier operations on `key`, when a slot is free. Never rejects: `fn`'s error is returned to the caller's catch. */
  run<T> (key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#lanes.get(key)
    const start = (): Promise<T> => this.#slot(fn)
    const op = before === undefined ? start() : before.then(start, start)
    this.#lanes.set(key, op)
    const done = (): void => { if (this.#lanes.get(key) === op) this.#lanes.delete(key) }
    op.then(done, done)
    return op
  }

  /** Operations started and not yet settled, in every lane. */
  get size (): number {
    return this.#lanes.size
  }

  /** Resolves when every operation started so far has settled. */
  async idle (): Promise<void> {
    while (this.#lanes.size > 0) await Promise.allSettled([...this.#lanes.values()])
  }

  async #slot<T> (fn: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#concurrency) await new Promise<void>(resolve => this.#waiting.push(resolve))
    this.#running++
    try {
      return await fn()
    } finally {
      this.#running--
      this.#waiting.shift()?.()
    }
  }
}
