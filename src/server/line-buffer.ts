/**
 * Access lines gathered and written in chunks (issue 15, item 5). Livery's
 * logger writes each line with its own write(2) (pino's default destination
 * is synchronous), and the access log is on by default: one system call per
 * request was a measurable share of a cache hit. Lines are kept in a string
 * and handed to the destination as one write when `maxBytes` have gathered
 * or `interval` ms after the first, whichever comes first.
 *
 * No line is lost on a graceful stop: the gateway flushes when it has
 * closed (every request answered and logged), and every buffer still open
 * is flushed on the process's `exit` event, which also runs for
 * process.exit() and an uncaught exception. Only a kill (SIGKILL, OOM) can
 * lose the last `interval` ms of lines.
 */

export interface LineDestination { write (chunk: string): unknown }

export interface LineBufferOptions {
  /** Flush once this many characters are waiting. @default 64 KiB */
  readonly maxBytes?: number
  /** Flush this long after the first waiting line, ms. @default 100 */
  readonly interval?: number
}

/** Open buffers, flushed on exit; one listener for all of them. */
const open = new Set<LineBuffer>()
let exitHook = false

export class LineBuffer implements LineDestination {
  readonly #dest: LineDestination
  readonly #maxBytes: number
  readonly #interval: number
  #pending = ''
  #timer: NodeJS.Timeout | undefined
  #closed = false
  readonly #onTimer = (): void => { this.#timer = undefined; this.flush() }

  constructor (dest: LineDestination, opts: LineBufferOptions = {}) {
    this.#dest = dest
    this.#maxBytes = opts.maxBytes ?? 64 * 1024
    this.#interval = opts.interval ?? 100
    open.add(this)
    if (!exitHook) {
      exitHook = true
      process.once('exit', () => { for (const b of open) b.flush() })
    }
  }

  /** Characters waiting to be written. */
  get pending (): number {
    return this.#pending.length
  }

  write (chunk: string): void {
    if (this.#closed) {
      this.#dest.write(chunk)
      return
    }
    this.#pending += chunk
    if (this.#pending.length >= this.#maxBytes) this.flush()
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#onTimer, this.#interval)
      // The exit hook writes what is left: a waiting line never keeps the process alive.
      this.#timer.unref()
    }
  }

  /** Writes what is waiting now. */
  flush (): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    if (this.#pending === '') return
    const chunk = this.#pending
    this.#pending = ''
    this.#dest.write(chunk)
  }

  /** Flushes and stops: later lines go straight to the destination. */
  close (): void {
    this.flush()
    this.#closed = true
    open.delete(this)
  }
}
