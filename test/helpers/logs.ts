/**
 * Captures what a pino logger writes, one parsed JSON object per line, and
 * lets a test wait for a line instead of sleeping.
 */
import { Writable } from 'node:stream'
import { createLogger, type Logger } from '../../src/log.ts'

export type LogLine = Record<string, unknown>

interface Waiter { readonly match: (line: LogLine) => boolean, readonly resolve: (line: LogLine) => void }

/** Lines kept per capture; tests write far fewer, the cap keeps a runaway loop bounded. */
const maxLines = 10_000

export class LogCapture {
  readonly lines: LogLine[] = []
  readonly logger: Logger
  readonly #waiters = new Set<Waiter>()
  #partial = ''

  constructor (level = 'debug') {
    const sink = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        this.#take(chunk.toString('utf8'))
        cb()
      },
    })
    this.logger = createLogger({ level, destination: sink })
  }

  #take (text: string): void {
    const parts = (this.#partial + text).split('\n')
    this.#partial = parts.pop() ?? ''
    for (const part of parts) {
      if (part === '') continue
      const line = JSON.parse(part) as LogLine
      if (this.lines.length < maxLines) this.lines.push(line)
      for (const w of this.#waiters) {
        if (w.match(line)) {
          this.#waiters.delete(w)
          w.resolve(line)
        }
      }
    }
  }

  /** Lines whose fields include every key/value of `fields`. */
  find (fields: LogLine): LogLine[] {
    return this.lines.filter(l => matches(l, fields))
  }

  /**
   * Resolves with the first line (already written or still to come) that
   * includes `fields`. Rejects after `timeoutMs` (a guard so a missing line
   * fails fast with the lines seen, instead of hanging the test file).
   */
  waitFor (fields: LogLine, timeoutMs = 5_000): Promise<LogLine> {
    const seen = this.lines.find(l => matches(l, fields))
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match: l => matches(l, fields),
        resolve: line => {
          clearTimeout(timer)
          resolve(line)
        },
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        reject(new Error(`no log line with ${JSON.stringify(fields)} within ${timeoutMs} ms; lines: ${JSON.stringify(this.lines)}`))
      }, timeoutMs)
      timer.unref()
      this.#waiters.add(waiter)
    })
  }

  /** Resolves with the access-log line of the next request for `path`. */
  access (path: string): Promise<LogLine> {
    return this.waitFor({ type: 'access', path })
  }
}

function matches (line: LogLine, fields: LogLine): boolean {
  return Object.entries(fields).every(([k, v]) => line[k] === v)
}
