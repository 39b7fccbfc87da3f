/**
 * The request pool and the transform threads (DESIGN §2).
 *
 * - RequestPool: admission control per process and per site (bulkheads),
 *   bounded FIFO queues, deadlines, killing long runners under pressure.
 * - Watchdog: sheds new requests while event-loop delay or heap is too high.
 * - TransformPool: generic piscina thread pool with a per-task budget that
 *   terminates the thread.
 * - The cluster primary lives in `./cluster.ts`, imported directly (not from
 *   here) because it loads prom-client for the cross-process aggregation.
 *
 * Metrics (STYLE §2.13): diagnostics channels, all `livery:pool:*`.
 *
 * | channel                          | message                                              | metric (lead's name)                         |
 * |----------------------------------|------------------------------------------------------|----------------------------------------------|
 * | `livery:pool:shed`               | `{ site: string \| undefined, reason, detail, seconds }` (time queued) | `livery_requests_shed_total{reason}`, `livery_queue_wait_seconds{outcome="shed"}` |
 * | `livery:pool:killed`             | `{ site, ranMs, killAfter }`                         | `livery_requests_killed_total`               |
 * | `livery:pool:queue-wait`         | `{ site, seconds }`, every admission (0 when at once)| `livery_queue_wait_seconds{site,outcome="admitted"}` |
 * | `livery:pool:deadline`           | `{ site, requestTimeout }`                           | (optional) deadlines counter                 |
 * | `livery:pool:overload`           | `{ reason: string \| undefined }` on transitions     | readyz / log                                 |
 * | `livery:pool:watchdog-sample`    | `{ eventLoopDelay, reason }`, every sample (500 ms)  | (tests, tracing)                             |
 * | `livery:pool:transform-timeout`  | `{ name, timeout }`                                  | (optional) transform timeouts counter        |
 * | `livery:pool:worker-exit`        | `{ pid, slot, code, signal, restartIn }` (primary)   | (optional) worker restarts counter           |
 *
 * `reason` of a shed is `queue_full`, `queue_timeout` or `overloaded`; the
 * watchdog publishes `overloaded` (site undefined) from `watchdog.shed()`,
 * the pool from `acquire()` when given the watchdog.
 *
 * Gauges come from `stats()`, read at scrape time:
 * - `requestPool.stats().inFlight[site]` → `livery_requests_in_flight{site}`
 * - `requestPool.stats().queued[site]`   → `livery_queue_length{site}`
 * - `transformPool.stats().utilization`  → `livery_worker_pool_utilization` (busy threads / threads)
 * - `transformPool.stats().queueSize`    → `livery_worker_pool_queue`
 * In a cluster, give those gauges `aggregator: 'average'` (utilization) or
 * the default sum (counts) so AggregatorRegistry combines them sensibly.
 */
export { RequestPool } from './request-pool.ts'
export type { RequestPoolOptions, PoolStats } from './request-pool.ts'
export { Ticket } from './ticket.ts'
export { Watchdog } from './watchdog.ts'
export type { WatchdogOptions, WatchdogStats } from './watchdog.ts'
export { TransformPool, resolveThreads } from './transform-pool.ts'
export type { TransformPoolOptions, RunOptions, TransformPoolStats } from './transform-pool.ts'
export type {
  ShedReason, ShedMessage, KilledMessage, QueueWaitMessage, DeadlineMessage,
  OverloadMessage, TransformTimeoutMessage, WorkerExitMessage,
} from './channels.ts'
