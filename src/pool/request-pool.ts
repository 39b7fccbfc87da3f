/**
 * Admission control (DESIGN §2). Node serves every request on one event loop,
 * so "the pool" is a count of upstream work in flight, not a set of threads:
 *
 * - a global `maxConcurrent` per process and a per-site `maxConcurrent` (the
 *   bulkhead: a site whose upstream hangs fills its own slots, not others');
 * - beyond them a bounded FIFO queue per site, also capped per process by the
 *   global `maxQueue`; a waiter gives up after the smaller of the site's and
 *   the global `queueTimeout`;
 * - when the global limit is the bottleneck, freed slots go round-robin
 *   across the sites that have waiters and room, so a busy site cannot starve
 *   a quiet one by having the longer queue;
 * - each ticket has a deadline (`requestTimeout`, counted from acquire() so
 *   queue time is included) that aborts its signal;
 * - killing under pressure: while a site has free slots its long requests run
 *   undisturbed; once its slots are full and requests wait, tickets that have
 *   run longer than `killAfter` are aborted, oldest first, one per waiter.
 *   Checked on enqueue and by a coarse unref'd timer.
 *
 * Only upstream work should acquire a ticket: a cache hit must never wait
 * behind a site's full upstream slots.
 */
import { performance } from 'node:perf_hooks'
import { liveryError, type LiveryError } from '../errors.ts'
import type { PoolConfig, SiteConfig, SitePoolConfig } from '../config/types.ts'
import { formatDuration } from '../config/units.ts'
import { silentLogger, type Logger } from '../log.ts'
import { Ticket, kAbort } from './ticket.ts'
import {
  deadlineChannel, killedChannel, queueWaitChannel, shedChannel,
  type ShedReason,
} from './channels.ts'

export interface RequestPoolOptions {
  /** @default silentLogger */
  readonly logger?: Logger
  /** Monotonic clock in ms; tests inject one to age tickets. @default performance.now */
  readonly now?: () => number
  /** Checked by acquire(); when it names a reason, new requests are shed. */
  readonly watchdog?: { overloaded (): string | undefined }
  /** How often sites with waiters are checked for killable tickets. @default 500 ms */
  readonly killCheckInterval?: number
}

export interface PoolStats {
  readonly inFlight: Record<string, number>
  readonly queued: Record<string, number>
  readonly totalInFlight: number
  readonly totalQueued: number
  /** Counters since construction. */
  readonly admitted: number
  readonly shed: number
  readonly killed: number
  readonly deadlines: number
  /** Waiters whose client went away while queued. */
  readonly abandoned: number
}

interface Waiter {
  readonly site: SiteState
  readonly enqueuedAt: number
  readonly clientSignal: AbortSignal | undefined
  readonly resolve: (ticket: Ticket) => void
  readonly reject: (err: LiveryError) => void
  timer: NodeJS.Timeout | undefined
  onAbort: (() => void) | undefined
}

interface SiteState {
  readonly name: string
  readonly cfg: SitePoolConfig
  readonly queueTimeout: number
  readonly deadlineError: LiveryError
  /** Insertion order is admission order, so iteration is oldest first. */
  readonly active: Set<Ticket>
  /** Insertion order is FIFO; Set gives O(1) removal of a waiter that leaves. */
  readonly queue: Set<Waiter>
}

export class RequestPool {
  readonly #global: PoolConfig
  readonly #sites = new Map<string, SiteState>()
  readonly #order: SiteState[] = []
  readonly #logger: Logger
  readonly #now: () => number
  readonly #watchdog: { overloaded (): string | undefined } | undefined
  readonly #killTimer: NodeJS.Timeout
  #cursor = 0
  #active = 0
  #queued = 0
  #closed = false
  #closedResolvers: Array<() => void> = []
  #counters = { admitted: 0, shed: 0, killed: 0, deadlines: 0, abandoned: 0 }

  constructor (global: PoolConfig, sites: readonly SiteConfig[], opts: RequestPoolOptions = {}) {
    this.#global = global
    this.#logger = (opts.logger ?? silentLogger).child({ module: 'pool' })
    this.#now = opts.now ?? (() => performance.now())
    this.#watchdog = opts.watchdog
    for (const site of sites) {
      if (this.#sites.has(site.name)) {
        throw liveryError('LIVERY_ERR_CONFIG', `sites: the name ${site.name} is used twice; the pool keeps slots per site name`)
      }
      const state: SiteState = {
        name: site.name,
        cfg: site.pool,
        queueTimeout: Math.min(site.pool.queueTimeout, global.queueTimeout),
        // Built once: the deadline error is the same for every ticket of a site.
        deadlineError: liveryError('LIVERY_ERR_DEADLINE', formatDuration(site.pool.requestTimeout)),
        active: new Set(),
        queue: new Set(),
      }
      this.#sites.set(site.name, state)
      this.#order.push(state)
    }
    this.#killTimer = setInterval(() => { this.#killCheckAll() }, opts.killCheckInterval ?? 500)
    this.#killTimer.unref()
  }

  /**
   * Resolves with a ticket once the request may start upstream work. Rejects
   * with `LIVERY_ERR_OVERLOADED`, `LIVERY_ERR_QUEUE_FULL`,
   * `LIVERY_ERR_QUEUE_TIMEOUT` (all 503), `LIVERY_ERR_CLIENT_ABORTED` when
   * `clientSignal` aborts while queued, `LIVERY_ERR_NO_SITE` for an unknown
   * site and `LIVERY_ERR_CLOSED` after close().
   */
  acquire (siteName: string, clientSignal?: AbortSignal): Promise<Ticket> {
    const site = this.#sites.get(siteName)
    if (site === undefined) return Promise.reject(liveryError('LIVERY_ERR_NO_SITE', siteName))
    if (this.#closed) return Promise.reject(liveryError('LIVERY_ERR_CLOSED', 'the request pool'))
    if (clientSignal?.aborted === true) return Promise.reject(liveryError('LIVERY_ERR_CLIENT_ABORTED'))
    const overloaded = this.#watchdog?.overloaded()
    if (overloaded !== undefined) {
      return Promise.reject(this.#shed(site, 'overloaded', overloaded, liveryError('LIVERY_ERR_OVERLOADED', overloaded)))
    }
    const now = this.#now()
    // Waiters go first: a newcomer may only skip the queue when it is empty.
    if (site.queue.size === 0 && this.#hasRoom(site)) {
      return Promise.resolve(this.#admit(site, now, now, clientSignal))
    }
    if (this.#queueIsFull(site) && site.queue.size > 0) {
      // A long runner may have become killable since the last check.
      this.#killCheck(site)
    }
    if (site.queue.size >= site.cfg.maxQueue) {
      return Promise.reject(this.#shed(site, 'queue_full', `site queue of ${site.cfg.maxQueue}`, liveryError('LIVERY_ERR_QUEUE_FULL', site.name)))
    }
    if (this.#queued >= this.#global.maxQueue) {
      return Promise.reject(this.#shed(site, 'queue_full', `process queue of ${this.#global.maxQueue}`, liveryError('LIVERY_ERR_QUEUE_FULL', site.name)))
    }
    return this.#enqueue(site, now, clientSignal)
  }

  /**
   * The ticket `acquire()` would resolve at once (the site's queue is empty
   * and it has room), synchronously; undefined whenever acquire() has
   * anything else to decide (queueing, shedding, errors), so the caller then
   * calls it. Saves each admitted pass or miss a promise, an AbortController
   * and an abort listener (issue 15); the caller aborts a ticket whose client
   * went away with `ticket.clientGone()`.
   */
  tryAcquire (siteName: string): Ticket | undefined {
    const site = this.#sites.get(siteName)
    if (site === undefined || this.#closed || site.queue.size !== 0 || !this.#hasRoom(site)) return undefined
    if (this.#watchdog?.overloaded() !== undefined) return undefined
    const now = this.#now()
    return this.#admit(site, now, now, undefined)
  }

  stats (): PoolStats {
    const inFlight: Record<string, number> = {}
    const queued: Record<string, number> = {}
    for (const site of this.#order) {
      inFlight[site.name] = site.active.size
      queued[site.name] = site.queue.size
    }
    return { inFlight, queued, totalInFlight: this.#active, totalQueued: this.#queued, ...this.#counters }
  }

  /**
   * Stops admitting new requests; queued ones still get slots as they free.
   * Resolves once nothing is in flight or queued. Idempotent.
   */
  close (): Promise<void> {
    this.#closed = true
    if (this.#active === 0 && this.#queued === 0) {
      clearInterval(this.#killTimer)
      return Promise.resolve()
    }
    return new Promise(resolve => { this.#closedResolvers.push(resolve) })
  }

  /** Rejects every waiter and aborts every ticket with `err` (default `LIVERY_ERR_CLOSED`). */
  destroy (err?: LiveryError): Promise<void> {
    this.#closed = true
    const reason = err ?? liveryError('LIVERY_ERR_CLOSED', 'the request pool')
    // Waiters first, everywhere: otherwise a slot freed by an aborted ticket
    // would be handed to a waiter of a site not yet visited.
    for (const site of this.#order) {
      for (const waiter of site.queue) {
        this.#dequeue(waiter)
        waiter.reject(reason)
      }
    }
    for (const site of this.#order) {
      for (const ticket of site.active) ticket[kAbort](reason)
    }
    return this.close()
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.close()
  }

  #hasRoom (site: SiteState): boolean {
    return site.active.size < site.cfg.maxConcurrent && this.#active < this.#global.maxConcurrent
  }

  #queueIsFull (site: SiteState): boolean {
    return site.queue.size >= site.cfg.maxQueue || this.#queued >= this.#global.maxQueue
  }

  #admit (site: SiteState, enqueuedAt: number, now: number, clientSignal: AbortSignal | undefined): Ticket {
    const queueWait = now - enqueuedAt
    const elapsed = Math.max(0, Math.floor(queueWait))
    const ticket = new Ticket({
      site: site.name,
      queueWait,
      startedAt: now,
      // The deadline covers queue time too; a request that queued past it
      // still gets at least a millisecond so the abort stays asynchronous.
      requestTimeout: site.cfg.requestTimeout > 0 ? Math.max(1, site.cfg.requestTimeout - elapsed) : 0,
      onDone: this.#onTicketDone,
      onDeadline: this.#onDeadline,
      deadlineError: site.deadlineError,
      clientSignal,
    })
    site.active.add(ticket)
    this.#active++
    this.#counters.admitted++
    if (queueWaitChannel.hasSubscribers) {
      queueWaitChannel.publish({ site: site.name, seconds: queueWait / 1000 })
    }
    return ticket
  }

  #enqueue (site: SiteState, now: number, clientSignal: AbortSignal | undefined): Promise<Ticket> {
    return new Promise<Ticket>((resolve, reject) => {
      const waiter: Waiter = { site, enqueuedAt: now, clientSignal, resolve, reject, timer: undefined, onAbort: undefined }
      waiter.timer = setTimeout(() => {
        waiter.timer = undefined
        this.#dequeue(waiter)
        reject(this.#shed(site, 'queue_timeout', `no slot within ${formatDuration(site.queueTimeout)}`,
          liveryError('LIVERY_ERR_QUEUE_TIMEOUT', site.name, formatDuration(site.queueTimeout)), this.#now() - waiter.enqueuedAt))
        this.#maybeClosed()
      }, site.queueTimeout)
      waiter.timer.unref()
      if (clientSignal !== undefined) {
        waiter.onAbort = () => {
          this.#dequeue(waiter)
          this.#counters.abandoned++
          reject(liveryError('LIVERY_ERR_CLIENT_ABORTED'))
          this.#maybeClosed()
        }
        clientSignal.addEventListener('abort', waiter.onAbort)
      }
      site.queue.add(waiter)
      this.#queued++
      if (site.active.size >= site.cfg.maxConcurrent) this.#killCheck(site)
      // A kill made just before queueing may have left room with nobody to take it.
      if (this.#hasRoom(site)) this.#drain()
    })
  }

  /** Takes a waiter out of its queue and drops its timer and listener. */
  #dequeue (waiter: Waiter): void {
    if (!waiter.site.queue.delete(waiter)) return
    this.#queued--
    if (waiter.timer !== undefined) clearTimeout(waiter.timer)
    waiter.timer = undefined
    if (waiter.onAbort !== undefined) waiter.clientSignal?.removeEventListener('abort', waiter.onAbort)
    waiter.onAbort = undefined
  }

  /** Hands free slots to waiters, round-robin across sites. */
  #drain (): void {
    const n = this.#order.length
    while (this.#queued > 0 && this.#active < this.#global.maxConcurrent) {
      let picked: SiteState | undefined
      for (let i = 0; i < n; i++) {
        const site = this.#order[(this.#cursor + i) % n]
        if (site.queue.size > 0 && site.active.size < site.cfg.maxConcurrent) {
          picked = site
          this.#cursor = (this.#cursor + i + 1) % n
          break
        }
      }
      if (picked === undefined) return
      const waiter: Waiter = picked.queue.values().next().value as Waiter
      this.#dequeue(waiter)
      waiter.resolve(this.#admit(picked, waiter.enqueuedAt, this.#now(), waiter.clientSignal))
    }
  }

  readonly #onTicketDone = (ticket: Ticket): void => {
    const site = this.#sites.get(ticket.site)
    if (site === undefined || !site.active.delete(ticket)) return
    this.#active--
    this.#drain()
    this.#maybeClosed()
  }

  readonly #onDeadline = (ticket: Ticket): void => {
    this.#counters.deadlines++
    const site = this.#sites.get(ticket.site)
    if (site === undefined) return
    this.#logger.warn({ site: site.name, requestTimeout: site.cfg.requestTimeout }, 'request ran past its deadline; aborting its upstream work')
    if (deadlineChannel.hasSubscribers) {
      deadlineChannel.publish({ site: site.name, requestTimeout: site.cfg.requestTimeout })
    }
  }

  #killCheckAll (): void {
    if (this.#queued === 0) return
    for (const site of this.#order) {
      if (site.queue.size > 0 && site.active.size >= site.cfg.maxConcurrent) this.#killCheck(site)
    }
  }

  /**
   * Kills at most one long runner per waiter, oldest first. `active` iterates
   * in admission order, so the first young ticket ends the scan.
   */
  #killCheck (site: SiteState): void {
    const killAfter = site.cfg.killAfter
    if (killAfter <= 0) return
    const now = this.#now()
    let budget = site.queue.size
    const victims: Ticket[] = []
    for (const ticket of site.active) {
      if (budget === 0 || now - ticket.startedAt < killAfter) break
      victims.push(ticket)
      budget--
    }
    for (const ticket of victims) {
      const ranMs = Math.round(now - ticket.startedAt)
      this.#counters.killed++
      this.#logger.warn({ site: site.name, ranMs, killAfter, waiting: site.queue.size },
        'killed a long-running request to make room for waiting ones')
      if (killedChannel.hasSubscribers) killedChannel.publish({ site: site.name, ranMs, killAfter })
      ticket[kAbort](liveryError('LIVERY_ERR_KILLED', formatDuration(killAfter), site.name))
    }
  }

  /** `waitedMs`: time spent in the queue before the shed, so the queue-wait histogram sees shed requests too. */
  #shed (site: SiteState, reason: ShedReason, detail: string, err: LiveryError, waitedMs = 0): LiveryError {
    this.#counters.shed++
    if (shedChannel.hasSubscribers) shedChannel.publish({ site: site.name, reason, detail, seconds: waitedMs / 1000 })
    return err
  }

  #maybeClosed (): void {
    if (!this.#closed || this.#active !== 0 || this.#queued !== 0) return
    clearInterval(this.#killTimer)
    const resolvers = this.#closedResolvers
    this.#closedResolvers = []
    for (const resolve of resolvers) resolve()
  }
}
