/**
 * A process per core (DESIGN §7). The primary forks `processes` workers with
 * node:cluster; each runs the same CLI (the server's `serve`) and they share
 * the listening port. A crashed worker is replaced after a backoff that
 * doubles per crash and resets once a replacement has stayed up for a stable
 * period; SIGTERM/SIGINT ask every worker to shut down gracefully (they get
 * SIGTERM and drain) and stragglers are killed after `shutdownTimeout`.
 *
 * Metrics: this is the one file in src/pool that imports prom-client,
 * because combining the workers' registries IS the metrics aggregation
 * (MetricsAggregator below: bounded scrapes, counters kept across worker
 * restarts, gauges combined by meaning). A worker answers the primary once
 * it has called setupWorkerMetrics(). A worker serving `/_livery/metrics`
 * calls requestClusterMetrics(), which asks the primary for the aggregate.
 *
 * Coherence: the primary also relays purges and holds the gateway's waiting
 * list for misses (class Coherence; the worker side is cluster-link.ts).
 */
import cluster, { type Worker } from 'node:cluster'
import { availableParallelism, hostname } from 'node:os'
import { randomUUID } from 'node:crypto'
import promClient from 'prom-client'
import { liveryError, wrapError } from '../errors.ts'
import { formatDuration } from '../config/units.ts'
import { silentLogger, type Logger } from '../log.ts'
import { workerExitChannel } from './channels.ts'
import { ipc, isIpc, type IpcMessage } from './ipc.ts'

export interface RestartPolicy {
  /** First delay before re-forking a crashed worker, ms. @default 100 */
  readonly initial: number
  /** Cap of the doubling delay, ms. @default 10000 */
  readonly max: number
  /** A worker up this long resets its slot's backoff, ms. @default 10000 */
  readonly stableAfter: number
}

export interface PrimaryOptions {
  /** Worker processes; 0 means one per core. */
  readonly processes: number
  /** How long workers may take to drain after SIGTERM before SIGKILL, ms. */
  readonly shutdownTimeout: number
  /** @default silentLogger */
  readonly logger?: Logger
  /** Arguments for each worker's CLI. @default process.argv.slice(2) */
  readonly workerArgs?: readonly string[]
  /** Script each worker runs. @default process.argv[1] */
  readonly exec?: string
  /** Extra environment for the workers (each also gets LIVERY_WORKER_ID). */
  readonly env?: Readonly<Record<string, string>>
  readonly restart?: Partial<RestartPolicy>
  /** Install SIGTERM/SIGINT handlers that shut down and exit. @default true */
  readonly handleSignals?: boolean
  /** Called after a signal-triggered shutdown. @default process.exit */
  readonly exit?: (code: number) => void
  /** How long a cold miss's waiters wait on the leading process, ms (`cache.lockTimeout`). @default 5000 */
  readonly lockTimeout?: number
  /** How long a purge waits for every worker's acknowledgement, ms. @default 2000 */
  readonly ackTimeout?: number
  /** How long a metrics scrape waits for each worker; a late one contributes its last counters, ms. @default 2000 */
  readonly scrapeTimeout?: number
}

export interface Primary {
  /** Pids of the live workers. */
  pids (): number[]
  /** Graceful shutdown of every worker; resolves once all have exited. Idempotent. */
  shutdown (): Promise<void>
}

const metricsRequest = 'livery:metrics:request'
const metricsResponse = 'livery:metrics:response'

interface MetricsRequest { readonly type: typeof metricsRequest, readonly id: string }
interface MetricsResponse { readonly type: typeof metricsResponse, readonly id: string, readonly metrics?: string, readonly error?: string }

interface Slot {
  readonly id: number
  worker: Worker | undefined
  startedAt: number
  failures: number
  timer: NodeJS.Timeout | undefined
}

export function resolveProcesses (processes: number): number {
  return processes > 0 ? processes : availableParallelism()
}

export function runPrimary (opts: PrimaryOptions): Primary {
  if (!cluster.isPrimary) throw liveryError('LIVERY_ERR_USAGE', 'runPrimary() must be called in the primary process')
  const logger = (opts.logger ?? silentLogger).child({ module: 'cluster' })
  const policy: RestartPolicy = { initial: 100, max: 10_000, stableAfter: 10_000, ...opts.restart }
  const count = resolveProcesses(opts.processes)
  const exit = opts.exit ?? ((code: number) => process.exit(code))
  const slots: Slot[] = []
  let shuttingDown: Promise<void> | undefined

  cluster.setupPrimary({
    exec: opts.exec ?? process.argv[1],
    args: [...(opts.workerArgs ?? process.argv.slice(2))],
    // Structured clone: relayed cache entries cross as bytes (ipc.ts).
    serialization: 'advanced',
  })
  const metricsAggregator = new MetricsAggregator({ scrapeTimeout: opts.scrapeTimeout ?? 2000, workers: () => slots.flatMap(s => s.worker ?? []) })
  const coherence = new Coherence({ lockTimeout: opts.lockTimeout ?? 5000, ackTimeout: opts.ackTimeout ?? 2000, workers: () => slots.flatMap(s => s.worker ?? []) })

  const fork = (slot: Slot): void => {
    slot.timer = undefined
    slot.startedAt = Date.now()
    const worker = cluster.fork({ ...opts.env, LIVERY_WORKER_ID: String(slot.id) })
    slot.worker = worker
    logger.info({ slot: slot.id, workerPid: worker.process.pid }, 'worker started')
    worker.on('exit', (code, signal) => { onExit(slot, worker, code, signal) })
    worker.on('message', (message: unknown) => { onMessage(worker, message) })
  }

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    if (slot.worker !== worker) return
    slot.worker = undefined
    coherence.gone(worker)
    metricsAggregator.retire(worker)
    const pid = worker.process.pid
    if (shuttingDown !== undefined) {
      logger.info({ slot: slot.id, workerPid: pid, code, signal }, 'worker exited')
      if (workerExitChannel.hasSubscribers) workerExitChannel.publish({ pid, slot: slot.id, code, signal, restartIn: undefined })
      return
    }
    if (Date.now() - slot.startedAt >= policy.stableAfter) slot.failures = 0
    const delay = Math.min(policy.max, policy.initial * 2 ** slot.failures)
    slot.failures++
    logger.error({ slot: slot.id, workerPid: pid, code, signal, restartIn: delay, failures: slot.failures },
      `worker exited unexpectedly; starting a replacement in ${formatDuration(delay)}`)
    if (workerExitChannel.hasSubscribers) workerExitChannel.publish({ pid, slot: slot.id, code, signal, restartIn: delay })
    // Not unref'd on purpose: while every worker is down this timer is the
    // primary's only reason to stay alive, and it must bring them back.
    slot.timer = setTimeout(() => { fork(slot) }, delay)
  }

  const onMessage = (worker: Worker, message: unknown): void => {
    if (isIpc(message)) {
      if (message.type === ipc.metricsSnapshot) metricsAggregator.snapshot(worker, message.id, (message.metrics ?? []) as Snapshot)
      else coherence.receive(worker, message)
      return
    }
    if (!isMessage(message, metricsRequest)) return
    const id = message.id
    metricsAggregator.scrape().then(
      metrics => { reply(worker, { type: metricsResponse, id, metrics }) },
      (err: unknown) => { reply(worker, { type: metricsResponse, id, error: err instanceof Error ? err.message : String(err) }) },
    )
  }

  const reply = (worker: Worker, message: MetricsResponse): void => {
    // The asking worker may have died meanwhile; then nobody waits for this.
    if (worker.isConnected()) worker.send(message)
  }

  const shutdown = (): Promise<void> => {
    shuttingDown ??= new Promise<void>(resolve => {
      const live: Worker[] = []
      for (const slot of slots) {
        if (slot.timer !== undefined) clearTimeout(slot.timer)
        slot.timer = undefined
        if (slot.worker !== undefined) live.push(slot.worker)
      }
      logger.info({ workers: live.length, shutdownTimeout: opts.shutdownTimeout }, 'shutting down workers')
      if (live.length === 0) { resolve(); return }
      let remaining = live.length
      // Not unref'd: the primary must stay up to kill stragglers.
      const killer = setTimeout(() => {
        for (const worker of live) {
          if (worker.isDead()) continue
          logger.warn({ workerPid: worker.process.pid }, `worker did not stop within ${formatDuration(opts.shutdownTimeout)}; killing it`)
          worker.process.kill('SIGKILL')
        }
      }, opts.shutdownTimeout)
      for (const worker of live) {
        worker.once('exit', () => {
          if (--remaining > 0) return
          clearTimeout(killer)
          resolve()
        })
        // SIGTERM rather than worker.disconnect(): the worker's own drain
        // logic (503 while draining, waiting for in-flight requests) runs on
        // SIGTERM both with and without a cluster.
        worker.process.kill('SIGTERM')
      }
    })
    return shuttingDown
  }

  if (opts.handleSignals !== false) {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (shuttingDown !== undefined) {
        logger.warn({ signal }, 'second signal during shutdown; killing workers now')
        for (const slot of slots) slot.worker?.process.kill('SIGKILL')
        return
      }
      logger.info({ signal }, 'received signal; shutting down')
      shutdown().then(() => { exit(0) }, (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        exit(1)
      })
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  }

  for (let id = 0; id < count; id++) {
    const slot: Slot = { id, worker: undefined, startedAt: 0, failures: 0, timer: undefined }
    slots.push(slot)
    fork(slot)
  }

  return {
    pids: () => slots.flatMap(slot => slot.worker?.process.pid ?? []),
    shutdown,
  }
}

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
class Coherence {
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
      send(origin, { type: ipc.purgeDone, id, acked: [], missing: others.map(label) })
      return
    }
    const timer = setTimeout(() => { this.#finish(id) }, this.#ackTimeout)
    timer.unref()
    const round: PurgeRound = { origin, waiting: new Map(others.map(w => [w.id, label(w)])), acked: [], timer }
    this.#rounds.set(id, round)
    const apply: IpcMessage = { type: ipc.purgeApply, id, sel: m.sel, soft: m.soft, ...(m.exact === undefined ? {} : { exact: m.exact }) }
    for (const w of others) send(w, apply)
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
    send(round.origin, { type: ipc.purgeDone, id, acked: round.acked, missing: [...round.waiting.values()] })
  }

  #lock (worker: Worker, id: string, key: string): void {
    const h = this.#held.get(key)
    if (h === undefined) {
      if (this.#held.size >= maxHeld) { send(worker, { type: ipc.lockGrant, id, lead: true }); return }
      // The lock times out like a process's own waiting list: the waiters then go upstream alone.
      const h: Held = { leader: worker, waiters: [], timer: setTimeout(() => { this.#end(key, h, undefined) }, this.#lockTimeout) }
      h.timer.unref()
      this.#held.set(key, h)
      send(worker, { type: ipc.lockGrant, id, lead: true })
      return
    }
    if (h.leader === worker || h.waiters.length >= maxWaitersPerKey) {
      // The leading process asking again means its own lead ended without an unlock (e.g. a lock timeout there).
      send(worker, { type: ipc.lockGrant, id, lead: false, entry: undefined })
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
    for (const w of h.waiters) send(w.worker, { type: ipc.lockGrant, id: w.id, lead: false, entry, ...(detached ? { purged: true } : {}) })
  }
}

/** How the Redis purge bus names a member too (`host:pid`), so one acknowledged over either transport counts once. */
function label (w: Worker): string {
  return `${hostname()}:${String(w.process.pid)}`
}

function send (w: Worker, m: IpcMessage): void {
  // A worker that died meanwhile has nobody waiting any more.
  if (w.isConnected()) w.send(m)
}

/** A worker's registry as JSON (prom-client's getMetricsAsJSON). */
type Snapshot = Array<{ name: string, type: string, aggregator?: string, values: unknown[] } & Record<string, unknown>>

/**
 * How each gauge is combined over the processes (DESIGN §6: "each gauge is
 * aggregated as its meaning requires"). Counters and histograms are summed;
 * gauges not named here are summed too (they count things each process has:
 * requests in flight, queue lengths, bytes of its own memory tier).
 */
const gaugeRules: Readonly<Record<string, 'average' | 'max' | 'min'>> = {
  // A share of threads busy: the gateway's share is the mean, not the sum.
  livery_worker_pool_utilization: 'average',
  // A boolean per origin: open anywhere means open.
  livery_fetch_circuit_open: 'max',
  // A boolean: Redis is up for the gateway only if every process reaches it.
  livery_redis_up: 'min',
  // A boolean per site: a theme is available to the gateway only if every process has it.
  livery_theme_available: 'min',
}
/** Tiers every process sees the same copy of: their bytes are counted once (the largest report), not per process. */
const sharedTiers: ReadonlySet<string> = new Set(['redis', 'disk'])

/** Workers asked for metrics by one scrape, waiting for their snapshots. */
interface Scrape { readonly waiting: Map<number, (s: Snapshot | undefined) => void> }

/**
 * The primary's metrics aggregation. Each scrape asks every live worker for
 * its registry as JSON and waits at most `scrapeTimeout`; a worker that does
 * not answer in time (hung, or just killed) contributes its last counters,
 * so a scrape answers within the bound and never drops. When a worker dies,
 * its last counters and histograms are kept (`retired`) and added to every
 * later scrape: counters stay monotonic across restarts, as Prometheus needs
 * (a drop reads as a counter reset). Counts of a dead worker since its last
 * scrape are lost, which only ever makes a counter grow by less.
 */
class MetricsAggregator {
  readonly #last = new Map<number, Snapshot>()
  #retired: Snapshot = []
  #retiring: Promise<void> = Promise.resolve()
  readonly #scrapes = new Map<string, Scrape>()
  readonly #timeout: number
  readonly #workers: () => Worker[]

  constructor (opts: { scrapeTimeout: number, workers: () => Worker[] }) {
    this.#timeout = opts.scrapeTimeout
    this.#workers = opts.workers
  }

  /** A worker died: keep its last counters. */
  retire (worker: Worker): void {
    const last = this.#last.get(worker.id)
    this.#last.delete(worker.id)
    for (const scrape of this.#scrapes.values()) scrape.waiting.get(worker.id)?.(undefined)
    if (last === undefined) return
    const kept = last.filter(m => m.type === 'counter' || m.type === 'histogram')
    // Folded into one snapshot, so the retired part stays one registry's size however many workers died.
    this.#retiring = this.#retiring.then(async () => {
      this.#retired = await promClient.AggregatorRegistry.aggregate([this.#retired, kept]).getMetricsAsJSON() as unknown as Snapshot
    })
  }

  snapshot (worker: Worker, id: string, metrics: Snapshot): void {
    this.#scrapes.get(id)?.waiting.get(worker.id)?.(metrics)
  }

  async scrape (): Promise<string> {
    const id = randomUUID()
    const scrape: Scrape = { waiting: new Map() }
    this.#scrapes.set(id, scrape)
    const workers = this.#workers().filter(w => w.isConnected())
    let timer: NodeJS.Timeout | undefined
    try {
      const answers = workers.map(w => new Promise<Snapshot | undefined>(resolve => {
        scrape.waiting.set(w.id, s => { scrape.waiting.delete(w.id); resolve(s) })
        send(w, { type: ipc.metricsCollect, id })
      }))
      const deadline = new Promise<void>(resolve => { timer = setTimeout(resolve, this.#timeout); timer.unref() })
      const done = Promise.all(answers)
      await Promise.race([done, deadline])
      for (const settle of [...scrape.waiting.values()]) settle(undefined)
      const got = await done
      const parts: Snapshot[] = []
      workers.forEach((w, i) => {
        const fresh = got[i]
        if (fresh !== undefined) {
          this.#last.set(w.id, fresh)
          parts.push(fresh)
        } else {
          // Late or gone: its gauges are unknown now, its counters are not.
          const last = this.#last.get(w.id)
          if (last !== undefined) parts.push(last.filter(m => m.type === 'counter' || m.type === 'histogram'))
        }
      })
      await this.#retiring
      return await combine(parts, this.#retired)
    } finally {
      clearTimeout(timer)
      this.#scrapes.delete(id)
    }
  }
}

async function combine (parts: readonly Snapshot[], retired: Snapshot): Promise<string> {
  const tierBytes = { name: 'livery_cache_bytes', help: '', type: 'gauge', aggregator: 'sum', values: [] as Array<{ value: number, labels: Record<string, string> }> }
  const byTier = new Map<string, number[]>()
  const prepared = parts.map(snap => snap.flatMap(m => {
    if (m.name === 'livery_cache_bytes') {
      tierBytes.help = String(m.help)
      for (const v of m.values as Array<{ value: number, labels: Record<string, string> }>) {
        const tier = v.labels.tier
        const list = byTier.get(tier) ?? []
        list.push(v.value)
        byTier.set(tier, list)
      }
      return []
    }
    const rule = m.type === 'gauge' ? gaugeRules[m.name] : undefined
    return [rule === undefined ? m : { ...m, aggregator: rule }]
  }))
  for (const [tier, values] of byTier) {
    tierBytes.values.push({ labels: { tier }, value: sharedTiers.has(tier) ? Math.max(...values) : values.reduce((a, b) => a + b, 0) })
  }
  // One more "registry": the dead workers' counters and the tier bytes, each already combined.
  prepared.push([...retired, ...(byTier.size > 0 ? [tierBytes] : [])])
  return await promClient.AggregatorRegistry.aggregate(prepared).metrics()
}

/**
 * In each worker, once at start-up: makes the worker answer the primary's
 * metrics requests, reporting `registries` (default: prom-client's global one).
 */
export function setupWorkerMetrics (registries?: promClient.Registry[]): void {
  const regs = registries ?? [promClient.register]
  process.on('message', (m: unknown) => {
    if (!isIpc(m) || m.type !== ipc.metricsCollect) return
    const id = m.id
    Promise.all(regs.map(r => r.getMetricsAsJSON())).then(
      all => { if (process.connected) process.send?.({ type: ipc.metricsSnapshot, id, metrics: all.flat() }) },
      () => { if (process.connected) process.send?.({ type: ipc.metricsSnapshot, id, metrics: undefined }) },
    )
  })
}

/**
 * In a worker: the whole cluster's metrics, aggregated by the primary.
 * Rejects with LIVERY_ERR_CLUSTER_METRICS outside a cluster worker, on timeout
 * or when a worker failed to report.
 */
export function requestClusterMetrics (timeout = 5_000): Promise<string> {
  const send = process.send?.bind(process)
  if (!cluster.isWorker || send === undefined) {
    return Promise.reject(liveryError('LIVERY_ERR_CLUSTER_METRICS', 'this process is not a cluster worker'))
  }
  const id = randomUUID()
  return new Promise<string>((resolve, reject) => {
    const onMessage = (message: unknown): void => {
      if (!isMessage(message, metricsResponse) || message.id !== id) return
      done()
      if (message.metrics !== undefined) resolve(message.metrics)
      else reject(wrapError('LIVERY_ERR_CLUSTER_METRICS', new Error(message.error), message.error))
    }
    const timer = setTimeout(() => {
      done()
      reject(liveryError('LIVERY_ERR_CLUSTER_METRICS', `the primary did not answer within ${formatDuration(timeout)}`))
    }, timeout)
    timer.unref()
    const done = (): void => {
      clearTimeout(timer)
      process.off('message', onMessage)
    }
    process.on('message', onMessage)
    send({ type: metricsRequest, id } satisfies MetricsRequest)
  })
}

function isMessage<T extends string> (message: unknown, type: T): message is { type: T, id: string, metrics?: string, error?: string } {
  return typeof message === 'object' && message !== null &&
    (message as { type?: unknown }).type === type && typeof (message as { id?: unknown }).id === 'string'
}
