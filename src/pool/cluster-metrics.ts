/**
 * The cluster's metrics (DESIGN §6): the primary combines its workers'
 * registries, which is why this file imports prom-client (bounded scrapes,
 * counters kept across worker restarts, gauges combined by meaning). A worker
 * answers the primary once it has called setupWorkerMetrics(); a worker
 * serving `/_livery/metrics` calls requestClusterMetrics(), which asks the
 * primary for the aggregate.
 */
import cluster, { type Worker } from 'node:cluster'
import { randomUUID } from 'node:crypto'
import promClient from 'prom-client'
import { liveryError, wrapError } from '../errors.ts'
import { formatDuration } from '../config/units.ts'
import { ipc, isIpc, sendTo } from './ipc.ts'

const metricsRequest = 'livery:metrics:request'
const metricsResponse = 'livery:metrics:response'

interface MetricsRequest { readonly type: typeof metricsRequest, readonly id: string }
interface MetricsResponse { readonly type: typeof metricsResponse, readonly id: string, readonly metrics?: string, readonly error?: string }

/** A worker's registry as JSON (prom-client's getMetricsAsJSON). */
export type Snapshot = Array<{ name: string, type: string, aggregator?: string, values: unknown[] } & Record<string, unknown>>

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
export class MetricsAggregator {
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
        sendTo(w, { type: ipc.metricsCollect, id })
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

/** In the primary: a worker serving /metrics asked for the aggregate; answers it (and ignores any other message). */
export function answerMetricsRequest (worker: Worker, message: unknown, aggregator: MetricsAggregator): void {
  if (!isMessage(message, metricsRequest)) return
  const id = message.id
  const reply = (m: MetricsResponse): void => {
    // The asking worker may have died meanwhile; then nobody waits for this.
    if (worker.isConnected()) worker.send(m)
  }
  aggregator.scrape().then(
    metrics => { reply({ type: metricsResponse, id, metrics }) },
    (err: unknown) => { reply({ type: metricsResponse, id, error: err instanceof Error ? err.message : String(err) }) },
  )
}
