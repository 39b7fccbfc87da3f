/**
 * The primary's half of cache coherence between its workers: purges
 * broadcast and acknowledged, and the gateway's waiting list for cold misses.
 * The worker side is cluster-link.ts.
 */
import type { Worker } from 'node:cluster'
import { hostname } from 'node:os'
import { ipc, sendTo, type IpcMessage } from './ipc.ts'

interface PurgeRound {
  readonly origin: Worker
  /** Workers yet to acknowledge, by worker id. */
  readonly waiting: Map<number, string>
  readonly acked: string[]
  readonly timer: NodeJS.Timeout
}

interface Held {
  readonly leader: Worker
  readonly waiters: Array<{ readonly worker: Worker, readonly id: string }>
  readonly timer: NodeJS.Timeout
}

/** Most purges being acknowledged, keys being fetched, and waiters per key: every map here is bounded. */
const maxRounds = 1000
const maxHeld = 10_000
const maxWaitersPerKey = 10_000

/**
 * The primary's half of cache coherence between its workers
 * (docs/architecture.md): it broadcasts purges and collects the
 * acknowledgements, and holds the gateway's waiting list for cold misses,
 * relaying the leader's entry to the processes that waited. It keeps no
 * cache of its own, so a primary never holds more than the entries in flight.
 */
export class Coherence {
  readonly #rounds = new Map<string, PurgeRound>()
  readonly #held = new Map<string, Held>()
  /** Flights a purge detached: they still deliver to their waiters, and take no new ones. */
  readonly #detached = new Set<Held & { readonly key: string }>()
  /** Purges some worker already detached for (insertion-ordered, bounded). */
  readonly #purgesSeen = new Set<string>()
  readonly #lockTimeout: number
  readonly #ackTimeout: number
  readonly #workers: () => Worker[]

  constructor (opts: { lockTimeout: number, ackTimeout: number, workers: () => Worker[] }) {
    this.#lockTimeout = opts.lockTimeout
    this.#ackTimeout = opts.ackTimeout
    this.#workers = opts.workers
  }

  receive (worker: Worker, m: IpcMessage): void {
    switch (m.type) {
      case ipc.purge: this.#purge(worker, m); return
      case ipc.purgeApplied: this.#applied(worker, m.id); return
      case ipc.lock: this.#lock(worker, m.id, m.key); return
      case ipc.unlock: this.#unlock(worker, m.key, m.entry); return
      case ipc.detach: this.#detach(m.id); return
      default:
    }
  }

  /** A worker died: it acknowledges nothing more, and keys it led are handed back. */
  gone (worker: Worker): void {
    for (const [id, round] of this.#rounds) {
      if (round.origin === worker) { clearTimeout(round.timer); this.#rounds.delete(id); continue }
      // Its memory tier died with it, so the purge holds there: not missing.
      if (round.waiting.delete(worker.id)) this.#maybeDone(id, round)
    }
    for (const [key, h] of this.#held) {
      if (h.leader === worker) { this.#end(key, h, undefined); continue }
      const i = h.waiters.findIndex(w => w.worker === worker)
      if (i !== -1) h.waiters.splice(i, 1)
    }
    for (const d of this.#detached) if (d.leader === worker) this.#end(d.key, d, undefined)
  }

  #detach (purgeId: string): void {
    // Only the first process to enter a purge detaches: flights started after that are fresh fills.
    if (this.#purgesSeen.has(purgeId)) return
    this.#purgesSeen.add(purgeId)
    if (this.#purgesSeen.size > maxRounds) this.#purgesSeen.delete(this.#purgesSeen.values().next().value as string)
    for (const [key, h] of this.#held) {
      if (this.#detached.size >= maxHeld) { this.#end(key, h, undefined); continue }
      this.#detached.add({ ...h, key })
    }
    this.#held.clear()
  }

  #purge (origin: Worker, m: Extract<IpcMessage, { type: typeof ipc.purge }>): void {
    const id = m.id
    const others = this.#workers().filter(w => w !== origin && w.isConnected())
    if (others.length === 0 || this.#rounds.size >= maxRounds) {
      sendTo(origin, { type: ipc.purgeDone, id, acked: [], missing: others.map(label) })
      return
    }
    const timer = setTimeout(() => { this.#finish(id) }, this.#ackTimeout)
    timer.unref()
    const round: PurgeRound = { origin, waiting: new Map(others.map(w => [w.id, label(w)])), acked: [], timer }
    this.#rounds.set(id, round)
    const apply: IpcMessage = { type: ipc.purgeApply, id, sel: m.sel, soft: m.soft, ...(m.exact === undefined ? {} : { exact: m.exact }) }
    for (const w of others) sendTo(w, apply)
  }

  #applied (worker: Worker, id: string): void {
    const round = this.#rounds.get(id)
    if (round === undefined) return
    const name = round.waiting.get(worker.id)
    if (name === undefined) return
    round.waiting.delete(worker.id)
    round.acked.push(name)
    this.#maybeDone(id, round)
  }

  #maybeDone (id: string, round: PurgeRound): void {
    if (round.waiting.size === 0) this.#finish(id)
  }

  #finish (id: string): void {
    const round = this.#rounds.get(id)
    if (round === undefined) return
    this.#rounds.delete(id)
    clearTimeout(round.timer)
    sendTo(round.origin, { type: ipc.purgeDone, id, acked: round.acked, missing: [...round.waiting.values()] })
  }

  #lock (worker: Worker, id: string, key: string): void {
    const h = this.#held.get(key)
    if (h === undefined) {
      if (this.#held.size >= maxHeld) { sendTo(worker, { type: ipc.lockGrant, id, lead: true }); return }
      // The lock times out like a process's own waiting list: the waiters then go upstream alone.
      const h: Held = { leader: worker, waiters: [], timer: setTimeout(() => { this.#end(key, h, undefined) }, this.#lockTimeout) }
      h.timer.unref()
      this.#held.set(key, h)
      sendTo(worker, { type: ipc.lockGrant, id, lead: true })
      return
    }
    if (h.leader === worker || h.waiters.length >= maxWaitersPerKey) {
      // The leading process asking again means its own lead ended without an unlock (e.g. a lock timeout there).
      sendTo(worker, { type: ipc.lockGrant, id, lead: false, entry: undefined })
      return
    }
    h.waiters.push({ worker, id })
  }

  #unlock (worker: Worker, key: string, entry: Uint8Array | undefined): void {
    const h = this.#held.get(key)
    if (h !== undefined && h.leader === worker) { this.#end(key, h, entry); return }
    for (const d of this.#detached) if (d.key === key && d.leader === worker) { this.#end(key, d, entry); return }
  }

  #end (key: string, h: Held, entry: Uint8Array | undefined): void {
    clearTimeout(h.timer)
    if (this.#held.get(key) === h) this.#held.delete(key)
    let detached = false
    for (const d of this.#detached) if (d.key === key && d.leader === h.leader && d.timer === h.timer) { this.#detached.delete(d); detached = true }
    // A detached flight started before a purge: its waiters may serve what it brought, never keep it.
    for (const w of h.waiters) sendTo(w.worker, { type: ipc.lockGrant, id: w.id, lead: false, entry, ...(detached ? { purged: true } : {}) })
  }
}

/** How the Redis purge bus names a member too (`host:pid`), so one acknowledged over either transport counts once. */
function label (w: Worker): string {
  return `${hostname()}:${String(w.process.pid)}`
}
