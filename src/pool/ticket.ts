/**
 * A ticket is one admitted request's hold on a slot. It owns the request's
 * AbortController: the deadline, a kill under pressure and the client going
 * away all abort `signal`, which the caller hands to undici so the upstream
 * call and its socket are torn down rather than merely abandoned (STYLE §2.9).
 */
import { liveryError, type LiveryError } from '../errors.ts'

/** Module-private hooks the pool uses; not exported from the package index. */
export const kAbort = Symbol('livery.pool.abort')

export interface TicketInit {
  readonly site: string
  readonly queueWait: number
  readonly startedAt: number
  readonly requestTimeout: number
  /** Called exactly once, when the ticket stops holding its slot. */
  readonly onDone: (ticket: Ticket) => void
  /** Called when the deadline fires, before the slot is given back. */
  readonly onDeadline: (ticket: Ticket) => void
  readonly deadlineError: LiveryError
  readonly clientSignal: AbortSignal | undefined
}

export class Ticket {
  /** The site whose slot this is. */
  readonly site: string
  /** Milliseconds spent queued before admission (0 when admitted at once). */
  readonly queueWait: number
  /** The pool clock's reading at admission; kill age is measured from it. */
  readonly startedAt: number
  /**
   * Aborts when the deadline passes (reason `LIVERY_ERR_DEADLINE`), when the
   * request is killed under pressure (`LIVERY_ERR_KILLED`), when the client
   * goes away (`LIVERY_ERR_CLIENT_ABORTED`) or when the pool is destroyed.
   */
  readonly signal: AbortSignal
  readonly #controller: AbortController
  readonly #onDone: (ticket: Ticket) => void
  readonly #clientSignal: AbortSignal | undefined
  /** Made only for a ticket with a client signal (a queued request): an admitted-at-once pass or miss has none. */
  readonly #onClientAbort: (() => void) | undefined
  #timer: NodeJS.Timeout | undefined
  #done = false

  constructor (init: TicketInit) {
    this.site = init.site
    this.queueWait = init.queueWait
    this.startedAt = init.startedAt
    this.#controller = new AbortController()
    this.signal = this.#controller.signal
    this.#onDone = init.onDone
    this.#clientSignal = init.clientSignal
    if (init.requestTimeout > 0) {
      const deadlineError = init.deadlineError
      const onDeadline = init.onDeadline
      this.#timer = setTimeout(() => {
        this.#timer = undefined
        onDeadline(this)
        this[kAbort](deadlineError)
      }, init.requestTimeout)
      this.#timer.unref()
    }
    if (this.#clientSignal !== undefined) {
      this.#onClientAbort = () => { this.clientGone() }
      this.#clientSignal.addEventListener('abort', this.#onClientAbort)
    }
  }

  /** True once released or aborted; the slot is free again. */
  get done (): boolean {
    return this.#done
  }

  /** Gives the slot back and admits the next waiter. Idempotent. */
  release (): void {
    if (this.#done) return
    this.#done = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#onClientAbort !== undefined) this.#clientSignal?.removeEventListener('abort', this.#onClientAbort)
    this.#onDone(this)
  }

  /** The client went away: aborts the request (`LIVERY_ERR_CLIENT_ABORTED`) and frees the slot. Idempotent. */
  clientGone (): void {
    this[kAbort](liveryError('LIVERY_ERR_CLIENT_ABORTED'))
  }

  [Symbol.dispose] (): void {
    this.release()
  }

  /**
   * Aborts the request and frees its slot at once: the aborted work unwinds on
   * its own, and the point of a kill is that the waiter need not wait for it.
   */
  [kAbort] (reason: LiveryError): void {
    if (this.#done) return
    this.release()
    this.#controller.abort(reason)
  }
}
