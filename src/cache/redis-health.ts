/**
 * Whether Redis answers, as an operator needs to see it (DESIGN §6): Redis
 * is an optimisation, so an outage is a degraded state, never unreadiness
 * (one Redis outage would otherwise take every instance out of its load
 * balancer). The state is shown in /_livery/status and as
 * `livery_redis_up`, and every change is logged once:
 *
 * - `up`: connected and answering;
 * - `stalled`: connected, but commands time out (the tier's breaker is open,
 *   or a command timed out since the last look);
 * - `down`: not connected (the clients keep reconnecting by themselves).
 *
 * One unref'd timer looks every `interval` ms; no request ever waits on it.
 * diagnostics_channel `livery:cache:redis_state` `{ state, previous }` on each change.
 */
import { channel } from 'node:diagnostics_channel'
import type { Logger } from '../log.ts'

const stateChannel = channel('livery:cache:redis_state')

export type RedisState = 'up' | 'stalled' | 'down'

export interface RedisProbe {
  /** Connected. */
  readonly ready: boolean
  /** Request-path calls are being sent (connected, breaker closed). */
  readonly available: boolean
  redisStats (): { readonly timeouts: number, readonly errors: number }
}

export interface RedisHealthOptions {
  readonly tier: RedisProbe
  /** Where Redis is, for the log lines (credentials are stripped). */
  readonly url: string
  readonly logger: Logger
  /** @default 500 ms */
  readonly interval?: number
}

/** What the gateway shows of it (status, metric). */
export interface RedisHealthView {
  check (): RedisState
  describe (): { state: RedisState, since: string, url: string }
}

export class RedisHealth implements RedisHealthView {
  readonly #tier: RedisProbe
  readonly #where: string
  readonly #log: Logger
  readonly #timer: NodeJS.Timeout
  #state: RedisState = 'down'
  #since = Date.now()
  #timeouts = 0
  #seenUp = false

  constructor (opts: RedisHealthOptions) {
    this.#tier = opts.tier
    this.#where = redact(opts.url)
    this.#log = opts.logger.child({ module: 'redis-health' })
    this.#timer = setInterval(() => { this.check() }, opts.interval ?? 500)
    this.#timer.unref()
  }

  get state (): RedisState {
    return this.#state
  }

  /** Looks now (the timer calls it; tests and status may too). */
  check (): RedisState {
    const t = this.#tier
    const timeouts = t.redisStats().timeouts
    const timedOut = timeouts > this.#timeouts
    this.#timeouts = timeouts
    const next: RedisState = !t.ready ? 'down' : (!t.available || timedOut) ? 'stalled' : 'up'
    if (next !== this.#state) this.#change(next)
    return next
  }

  describe (): { state: RedisState, since: string, url: string } {
    this.check()
    return { state: this.#state, since: new Date(this.#since).toISOString(), url: this.#where }
  }

  close (): void {
    clearInterval(this.#timer)
  }

  #change (next: RedisState): void {
    const previous = this.#state
    this.#state = next
    this.#since = Date.now()
    if (stateChannel.hasSubscribers) stateChannel.publish({ state: next, previous })
    const fields = { redis: this.#where, state: next, previous }
    if (next === 'up') {
      // The first connection at start-up is not news; a return after an outage is.
      if (this.#seenUp) this.#log.info(fields, 'Redis is back: the shared tier, purge bus and locks are in use again')
      else this.#log.info(fields, 'Redis is up')
      this.#seenUp = true
    } else if (next === 'stalled') {
      this.#log.warn(fields, 'Redis stalled: commands time out; requests skip it (served from the local tiers) until it answers')
    } else if (this.#seenUp || previous !== 'down') {
      this.#log.warn(fields, 'Redis is down: requests are served from the local tiers; purges reach other instances once it is back')
    }
  }
}

function redact (url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    return u.toString()
  } catch {
    return '(unparsable URL)'
  }
}
