/**
 * Where and whether a page is themed (issue 13), per site:
 *
 * - Identical pages themed at once on threads share one transform.
 * - A page whose transform ran past its budget is remembered for
 *   `theme.rememberTimeout`: it is served unthemed at once, without another
 *   attempt, so one expensive page cannot terminate thread after thread (two
 *   clients on such a page used to cut other sites' hits to a sixth).
 * - Small pages are themed inline (a thread hop costs more than they do),
 *   unless the site's measured cost per byte says this page would hold the
 *   event loop longer than `theme.inlineBudget`: then it goes to a thread,
 *   with the same budget as the large ones. The estimate follows every
 *   transform, inline or threaded (as the thread timed it, without the wait
 *   for a thread), so a site whose rules are expensive moves to the threads
 *   after its first slow page and cheap sites stay or come back inline.
 * - Inline transforms share the event loop's turn budget (inline-turn.ts):
 *   past it, a page waits for the next turn instead of holding the loop.
 *
 * `livery:theme:cost` `{ site, ms, bytes, inline }` is published for every
 * transform, `ms` being the CPU time it took on its thread (thread-cpu.ts;
 * the watchdog sheds by it); `livery:theme:timeout-remembered`
 * `{ site, path }` when a remembered page is served unthemed without a try.
 */
import { channel } from 'node:diagnostics_channel'
import { LRUCache } from 'lru-cache'
import { liveryError, hasCode } from '../errors.ts'
import { formatDuration } from '../config/units.ts'
import { transformCompiled, type Compiled, type EncodedOutcome, type TransformContext, type TransformOutcome, type TransformRunner } from '../theme/index.ts'
import type { TransformPool } from '../pool/index.ts'
import type { ThreadedOutcome, TransformTask } from './transform-task.ts'
import { shareTheme, threadLoadChannel } from './shared-theme.ts'
import { loopTurn, type LoopTurn } from './inline-turn.ts'
import { threadCpuMs } from './thread-cpu.ts'

export const costChannel = channel('livery:theme:cost')
export const rememberedChannel = channel('livery:theme:timeout-remembered')

export interface TransformSchedulerOptions {
  readonly site: string
  readonly pool: TransformPool
  /** Pages at least this many characters go to a thread. */
  readonly threshold: number
  /** Budget of a threaded transform, ms. */
  readonly timeout: number
  /** Longest an inline transform may be expected to take, ms; 0: no estimate (size alone decides). */
  readonly inlineBudget: number
  /** How long a timed-out page is served unthemed without a new attempt, ms; 0: never remembered. */
  readonly rememberTimeout: number
  /** Remembered pages at most. @default 1000 */
  readonly maxRemembered?: number
  /** The turn budget inline transforms share. @default loopTurn, the process's */
  readonly turn?: LoopTurn
}

/** Weight of the newest measurement in the cost-per-character average. */
const alpha = 0.3

export class TransformScheduler {
  readonly #opts: TransformSchedulerOptions
  readonly #timedOut: LRUCache<string, true> | undefined
  /** Threaded transforms running, by page: a second request for the same page shares the first's result (and its one timeout). */
  readonly #running = new Map<string, Promise<ThreadedOutcome['outcome']>>()
  /** Exponentially weighted ms per character of content, from every transform of the site. */
  #msPerChar = 0

  constructor (opts: TransformSchedulerOptions) {
    this.#opts = opts
    this.#timedOut = opts.rememberTimeout > 0 ? new LRUCache({ max: opts.maxRemembered ?? 1000, ttl: opts.rememberTimeout, ttlAutopurge: false }) : undefined
  }

  /** The engine's TransformRunner. */
  readonly run: TransformRunner = (compiled, html, ctx) => {
    const key = pageKey(ctx, html)
    if (this.#timedOut?.has(key) === true) {
      if (rememberedChannel.hasSubscribers) rememberedChannel.publish({ site: this.#opts.site, path: ctx.path })
      return Promise.reject(liveryError('LIVERY_ERR_TRANSFORM_TIMEOUT', `${formatDuration(this.#opts.timeout)} within the last ${formatDuration(this.#opts.rememberTimeout)}; not retried yet`))
    }
    const budget = this.#opts.inlineBudget
    if (html.length < this.#opts.threshold && (budget <= 0 || this.#msPerChar * html.length <= budget)) {
      return (this.#opts.turn ?? loopTurn).run(() => {
        const started = threadCpuMs()
        const out = transformCompiled(compiled, html, ctx)
        this.#measured(threadCpuMs() - started, html.length, true)
        return out
      })
    }
    const running = this.#running.get(key)
    if (running !== undefined) return running
    const job = this.#threaded(compiled, html, ctx, key).finally(() => { this.#running.delete(key) })
    this.#running.set(key, job)
    return job
  }

  /** The current estimate, ms for a page of `chars` characters (tests, status). */
  estimate (chars: number): number {
    return this.#msPerChar * chars
  }

  async #threaded (compiled: Compiled, html: string, ctx: TransformContext, key: string): Promise<Exclude<TransformOutcome, { kind: 'html' }> | EncodedOutcome> {
    try {
      const theme = shareTheme(compiled, this.#opts.site)
      const out = await this.#opts.pool.run<TransformTask, ThreadedOutcome>({ site: this.#opts.site, theme, html, ctx }, { name: 'transform', timeout: this.#opts.timeout })
      // The thread's own CPU figure: timed from here, a burst's wait for the thread counted as the pages' cost, the
      // estimate rose with the queue, and a site of cheap pages stayed on the threads until the queue overflowed.
      this.#measured(out.ms, html.length, false)
      if (out.loaded && threadLoadChannel.hasSubscribers) threadLoadChannel.publish({ site: this.#opts.site, version: theme.version })
      return out.outcome
    } catch (err) {
      if (hasCode(err, 'LIVERY_ERR_TRANSFORM_TIMEOUT')) {
        this.#timedOut?.set(key, true)
        this.#measured(this.#opts.timeout, html.length, false)
      }
      throw err
    }
  }

  #measured (ms: number, chars: number, inline: boolean): void {
    const perChar = ms / Math.max(1, chars)
    this.#msPerChar = this.#msPerChar === 0 ? perChar : this.#msPerChar + alpha * (perChar - this.#msPerChar)
    if (costChannel.hasSubscribers) costChannel.publish({ site: this.#opts.site, ms, bytes: chars, inline })
  }
}

/** Path, length and both ends of the page: cheap, and a changed page rarely keeps all three. */
function pageKey (ctx: TransformContext, html: string): string {
  return `${ctx.path}\u0000${html.length}\u0000${html.slice(0, 64)}\u0000${html.slice(-64)}`
}
