/**
 * The overload watchdog (DESIGN §2): samples event-loop delay and heap on an
 * unref'd interval and keeps the verdict in a field, so the hot path sheds a
 * request with one property read before it costs anything, and `readyz` can
 * report not ready so a load balancer steers traffic away.
 *
 * Event-loop delay is the longest gap between two ticks of a timer of its
 * own (every `resolution` ms, less that period) during the last sampling
 * window: a loop blocked for 300 ms shows up as a 300 ms delay in the next
 * sample. Not `monitorEventLoopDelay`: its reset() also forgets its last
 * tick, so a stall that began before the histogram's first tick after a
 * reset, or ended before it, was never recorded (seen under load: 1 stall in
 * 20 with a 500 ms window, for a 300 ms stall right after a sample). The
 * ticker keeps its last tick across samples; a sample that runs after a
 * stall but before the ticker counts the gap since the last tick itself, and
 * takes that tick as its own so the next window does not count it again.
 *
 * Shedding is per site when the lag has a known cause (issue 13): inline
 * theming publishes its cost on `livery:theme:cost`, and a window whose
 * delay is over the limit sheds only the sites that spent at least a third
 * of the window's inline theming time, so the cheap hits of other sites go
 * on. With no such cost seen (GC, a heap limit, something else), every site
 * is shed as before.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { getHeapStatistics } from 'node:v8'
import { liveryError, type LiveryError } from '../errors.ts'
import { formatDuration, formatSize } from '../config/units.ts'
import { silentLogger, type Logger } from '../log.ts'
import { overloadChannel, shedChannel, watchdogSampleChannel } from './channels.ts'

export interface WatchdogOptions {
  /** Shed when the event-loop delay in a window exceeds this (ms; 0: off). @default PoolConfig.maxEventLoopDelay */
  readonly maxEventLoopDelay: number
  /** Shed when V8's used heap exceeds this (bytes; 0: off). @default PoolConfig.maxHeap */
  readonly maxHeap: number
  /** Sampling window in ms. @default 500 */
  readonly interval?: number
  /** Ticker period in ms; smaller sees shorter stalls. @default 20 */
  readonly resolution?: number
  /** @default silentLogger */
  readonly logger?: Logger
}

export interface WatchdogStats {
  /** Worst event-loop delay in the last window, ms. */
  readonly eventLoopDelay: number
  /** V8 used heap at the last sample, bytes (0 when the heap limit is off). */
  readonly heapUsed: number
  readonly overloaded: string | undefined
  /** Sites shed while overloaded; empty means every site is. */
  readonly costlySites: readonly string[]
}

/** A site whose share of the window's inline theming time is at least this is shed under lag. */
const costlyShare = 1 / 3

export class Watchdog {
  readonly #maxDelay: number
  readonly #maxHeap: number
  readonly #logger: Logger
  #timer: NodeJS.Timeout | undefined
  #ticker: NodeJS.Timeout | undefined
  readonly #resolution: number
  /** performance.now() at the ticker's last tick (or a sample that took its place). */
  #lastTick = 0
  /** The longest gap between ticks in this window, less the period, ms. */
  #maxLag = 0
  #reason: string | undefined
  #delay = 0
  #heap = 0
  /** Inline theming ms per site in the current window. */
  #cost = new Map<string, number>()
  /** Sites to shed while overloaded; undefined: all of them. */
  #costly: ReadonlySet<string> | undefined
  readonly #onCost = (m: unknown): void => {
    const { site, ms, inline } = m as { site: string, ms: number, inline: boolean }
    if (inline) this.#cost.set(site, (this.#cost.get(site) ?? 0) + ms)
  }

  constructor (opts: WatchdogOptions) {
    this.#maxDelay = opts.maxEventLoopDelay
    this.#maxHeap = opts.maxHeap
    this.#logger = (opts.logger ?? silentLogger).child({ module: 'watchdog' })
    this.#resolution = opts.resolution ?? 20
    if (this.#maxDelay <= 0 && this.#maxHeap <= 0) return
    if (this.#maxDelay > 0) {
      this.#lastTick = performance.now()
      this.#ticker = setInterval(() => { this.#tick() }, this.#resolution)
      this.#ticker.unref()
      subscribe('livery:theme:cost', this.#onCost)
    }
    this.#timer = setInterval(() => { this.#sample() }, opts.interval ?? 500)
    this.#timer.unref()
  }

  /** Why new requests should be shed right now, or undefined. A field read. */
  overloaded (): string | undefined {
    return this.#reason
  }

  /**
   * For the server's hot path: undefined when healthy, otherwise a
   * `LIVERY_ERR_OVERLOADED` error with the shed already published.
   */
  shed (site?: string): LiveryError | undefined {
    const reason = this.#reason
    if (reason === undefined) return undefined
    if (site !== undefined && this.#costly !== undefined && !this.#costly.has(site)) return undefined
    if (shedChannel.hasSubscribers) shedChannel.publish({ site, reason: 'overloaded', detail: reason })
    return liveryError('LIVERY_ERR_OVERLOADED', reason)
  }

  stats (): WatchdogStats {
    return { eventLoopDelay: this.#delay, heapUsed: this.#heap, overloaded: this.#reason, costlySites: this.#costly === undefined ? [] : [...this.#costly] }
  }

  close (): Promise<void> {
    clearInterval(this.#timer)
    clearInterval(this.#ticker)
    this.#timer = undefined
    this.#ticker = undefined
    unsubscribe('livery:theme:cost', this.#onCost)
    return Promise.resolve()
  }

  destroy (): Promise<void> {
    return this.close()
  }

  #tick (): void {
    const now = performance.now()
    const lag = now - this.#lastTick - this.#resolution
    if (lag > this.#maxLag) this.#maxLag = lag
    this.#lastTick = now
  }

  #sample (): void {
    let reason: string | undefined
    if (this.#ticker !== undefined) {
      // A stall that just ended may not have reached the ticker yet: count it here, once.
      this.#tick()
      this.#delay = Math.max(0, this.#maxLag)
      this.#maxLag = 0
      if (this.#delay > this.#maxDelay) {
        reason = `event-loop delay ${formatDuration(Math.round(this.#delay))} > ${formatDuration(this.#maxDelay)}`
      }
      // Only a lag has a cause to pin on a site; a heap limit sheds everyone.
      let costly: Set<string> | undefined
      if (reason !== undefined) {
        let total = 0
        for (const ms of this.#cost.values()) total += ms
        for (const [s, ms] of this.#cost) if (total > 0 && ms / total >= costlyShare) (costly ??= new Set()).add(s)
      }
      this.#costly = costly
      this.#cost = new Map()
    }
    if (this.#maxHeap > 0) {
      this.#heap = getHeapStatistics().used_heap_size
      if (reason === undefined && this.#heap > this.#maxHeap) {
        reason = `heap ${Math.round(this.#heap / 1048576)}MB > ${formatSize(this.#maxHeap)}`
      }
    }
    if (watchdogSampleChannel.hasSubscribers) watchdogSampleChannel.publish({ eventLoopDelay: this.#delay, reason })
    if (reason === this.#reason) return
    // Log and publish transitions only; the limit string changes with the
    // measured value, so compare "overloaded or not" to avoid noise.
    const was = this.#reason
    this.#reason = reason
    if ((was === undefined) === (reason === undefined)) return
    if (reason !== undefined) this.#logger.warn({ reason }, 'overloaded: shedding new requests')
    else this.#logger.info('recovered from overload: admitting new requests')
    if (overloadChannel.hasSubscribers) overloadChannel.publish({ reason })
  }
}
