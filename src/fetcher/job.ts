/**
 * One fetch job: the single flight for one key. It owns the AbortController
 * that its total deadline (and the pool's close/destroy) aborts, and a result
 * promise that never rejects, so any number of waiters can attach and leave
 * without an unhandled rejection when none is left.
 */
import { liveryError, type LiveryError } from '../errors.ts'
import { channels } from './channels.ts'
import type { Startable } from './queue.ts'
import type { FetchedResource } from './types.ts'

export type JobResult =
  | { readonly ok: true, readonly resource: FetchedResource }
  | { readonly ok: false, readonly error: LiveryError }

export class Job implements Startable {
  readonly key: string
  readonly origin: string
  /** Waits are measured from here (see `FetchPool.get`), so it includes queueing time. */
  readonly startedAt: number
  /** This job is the circuit's half-open probe for its origin. */
  readonly probe: boolean
  readonly controller = new AbortController()
  readonly result: Promise<JobResult>
  started = false
  settled = false
  readonly #resolve: (r: JobResult) => void
  readonly #run: (job: Job) => void
  readonly #deadline: NodeJS.Timeout

  constructor (key: string, origin: string, startedAt: number, probe: boolean, total: number, run: (job: Job) => void) {
    this.key = key
    this.origin = origin
    this.startedAt = startedAt
    this.probe = probe
    this.#run = run
    let resolve!: (r: JobResult) => void
    this.result = new Promise<JobResult>(r => { resolve = r })
    this.#resolve = resolve
    this.#deadline = setTimeout(() => {
      if (channels.timeout.hasSubscribers) channels.timeout.publish({ url: key, origin, phase: 'total' })
      this.controller.abort(liveryError('LIVERY_ERR_FETCH_TIMEOUT', key, `the job ran past its total deadline of ${total} ms`))
    }, total)
    this.#deadline.unref()
  }

  get signal (): AbortSignal { return this.controller.signal }

  /** Called by the queue when the job gets a slot. */
  start (): void {
    this.started = true
    this.#run(this)
  }

  /** Settles the job once; later calls are ignored. */
  settle (r: JobResult): boolean {
    if (this.settled) return false
    this.settled = true
    clearTimeout(this.#deadline)
    this.#resolve(r)
    return true
  }
}
