/**
 * Per-origin circuit breaker. Closed: jobs run, consecutive failures are
 * counted. After `failures` in a row the circuit opens for `coolDown`; the
 * first job asked for after that is the single probe (half-open) and every
 * other caller is turned away until it ends. A failed probe reopens the
 * circuit with the cool-down doubled, up to `maxCoolDown`; any success closes it.
 */
import { channels } from './channels.ts'
import type { CircuitState } from './types.ts'

export interface CircuitLimits {
  readonly failures: number
  readonly coolDown: number
  readonly maxCoolDown: number
}

interface Circuit {
  state: CircuitState
  failures: number
  coolDown: number
  openUntil: number
}

/** Origins tracked at once; healthy ones are forgotten first when full. */
const maxOrigins = 1000

export class Circuits {
  readonly #limits: CircuitLimits
  readonly #now: () => number
  readonly #byOrigin = new Map<string, Circuit>()

  constructor (limits: CircuitLimits, now: () => number) {
    this.#limits = limits
    this.#now = now
  }

  /**
   * May a job for `origin` start now? `'probe'` means yes, and this job is the
   * half-open probe: the caller must report its end with `success`/`failure`.
   */
  admit (origin: string): 'yes' | 'probe' | 'no' {
    const c = this.#byOrigin.get(origin)
    if (c === undefined || c.state === 'closed') return 'yes'
    if (c.state === 'half-open') return 'no'
    if (this.#now() < c.openUntil) return 'no'
    c.state = 'half-open'
    if (channels.circuitHalfOpen.hasSubscribers) channels.circuitHalfOpen.publish({ origin })
    return 'probe'
  }

  /** When the open circuit of `origin` lets a probe through (for error messages). */
  openUntil (origin: string): number | undefined {
    const c = this.#byOrigin.get(origin)
    return c === undefined || c.state === 'closed' ? undefined : c.openUntil
  }

  success (origin: string): void {
    const c = this.#byOrigin.get(origin)
    if (c === undefined) {
      this.#track(origin, { state: 'closed', failures: 0, coolDown: this.#limits.coolDown, openUntil: 0 })
      return
    }
    const wasOpen = c.state !== 'closed'
    c.state = 'closed'
    c.failures = 0
    c.coolDown = this.#limits.coolDown
    if (wasOpen && channels.circuitClose.hasSubscribers) channels.circuitClose.publish({ origin })
  }

  failure (origin: string): void {
    let c = this.#byOrigin.get(origin)
    if (c === undefined) {
      c = { state: 'closed', failures: 0, coolDown: this.#limits.coolDown, openUntil: 0 }
      this.#track(origin, c)
    }
    c.failures++
    if (c.state === 'half-open') {
      c.coolDown = Math.min(c.coolDown * 2, this.#limits.maxCoolDown)
      this.#open(origin, c)
    } else if (c.state === 'closed' && c.failures >= this.#limits.failures) {
      c.coolDown = this.#limits.coolDown
      this.#open(origin, c)
    }
    // Already open: a job admitted before the circuit opened failed late; the
    // cool-down already running is the right one.
  }

  /** A probe that ended without asking the origin (aborted by close) must not leave the circuit half-open forever. */
  release (origin: string): void {
    const c = this.#byOrigin.get(origin)
    if (c !== undefined && c.state === 'half-open') c.state = 'open'
  }

  snapshot (): Record<string, CircuitState> {
    const out: Record<string, CircuitState> = {}
    for (const [origin, c] of this.#byOrigin) out[origin] = c.state
    return out
  }

  #open (origin: string, c: Circuit): void {
    c.state = 'open'
    c.openUntil = this.#now() + c.coolDown
    if (channels.circuitOpen.hasSubscribers) channels.circuitOpen.publish({ origin, coolDown: c.coolDown, until: c.openUntil, failures: c.failures })
  }

  #track (origin: string, c: Circuit): void {
    if (this.#byOrigin.size >= maxOrigins) {
      // Forget a healthy origin first; if all are failing, the oldest.
      let victim: string | undefined
      for (const [o, v] of this.#byOrigin) {
        if (v.state === 'closed') { victim = o; break }
      }
      this.#byOrigin.delete(victim ?? this.#byOrigin.keys().next().value as string)
    }
    this.#byOrigin.set(origin, c)
  }
}
