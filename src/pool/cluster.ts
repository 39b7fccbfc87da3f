/**
 * A process per core (DESIGN §7). The primary forks `processes` workers with
 * node:cluster; each runs the same CLI (the server's `serve`) and they share
 * the listening port. A crashed worker is replaced after a backoff that
 * doubles per crash and resets once a replacement has stayed up for a stable
 * period; SIGTERM/SIGINT ask every worker to shut down gracefully (they get
 * SIGTERM and drain) and stragglers are killed after `shutdownTimeout`.
 *
 * The primary also aggregates the workers' metrics (cluster-metrics.ts), and
 * relays purges and holds the gateway's waiting list for misses
 * (cluster-coherence.ts; the worker side is cluster-link.ts).
 */
import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import { flushCompileCache } from 'node:module'
import { liveryError } from '../errors.ts'
import { formatDuration } from '../config/units.ts'
import { silentLogger, type Logger } from '../log.ts'
import { workerExitChannel } from './channels.ts'
import { ipc, isIpc } from './ipc.ts'
import { Coherence } from './cluster-coherence.ts'
import { answerMetricsRequest, MetricsAggregator, type Snapshot } from './cluster-metrics.ts'

// Workers and the CLI import these from here: the cluster's entry points in one place.
export { requestClusterMetrics, setupWorkerMetrics } from './cluster-metrics.ts'

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
    // The primary compiled the modules a worker loads: written out now, the compile cache spares the worker Node's
    // TypeScript compiler (bin/livery.js). A no-op when the cache is off.
    flushCompileCache()
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
    answerMetricsRequest(worker, message, metricsAggregator)
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
