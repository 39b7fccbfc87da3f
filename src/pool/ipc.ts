/**
 * The messages between the cluster primary and its workers. The channel
 * uses Node's 'advanced' serialization (structured clone), so an encoded
 * cache entry crosses it as bytes, not as a JSON array of numbers.
 *
 * | type                       | direction         | fields                              |
 * |----------------------------|-------------------|-------------------------------------|
 * | `livery:purge`             | worker → primary  | id, sel, soft                       |
 * | `livery:purge:apply`       | primary → workers | id, sel, soft                       |
 * | `livery:purge:applied`     | worker → primary  | id, count, error?                   |
 * | `livery:purge:done`        | primary → worker  | id, acked, missing (pids as text)   |
 * | `livery:lock`              | worker → primary  | id, key                             |
 * | `livery:lock:grant`        | primary → worker  | id, lead, entry? (when not leading), purged? (a purge came meanwhile: serve, do not keep) |
 * | `livery:unlock`            | worker → primary  | key, entry? (the leader's result)   |
 * | `livery:detach`            | worker → primary  | id (a purge: running flights take no new waiters) |
 * | `livery:metrics:collect`   | primary → worker  | id                                  |
 * | `livery:metrics:snapshot`  | worker → primary  | id, metrics (getMetricsAsJSON)      |
 */
import type { Worker } from 'node:cluster'
import type { PurgeSelector } from '../cache/store.ts'
import type { ExactEntry } from '../cache/peers.ts'

export const ipc = {
  purge: 'livery:purge',
  purgeApply: 'livery:purge:apply',
  purgeApplied: 'livery:purge:applied',
  purgeDone: 'livery:purge:done',
  lock: 'livery:lock',
  lockGrant: 'livery:lock:grant',
  unlock: 'livery:unlock',
  detach: 'livery:detach',
  metricsCollect: 'livery:metrics:collect',
  metricsSnapshot: 'livery:metrics:snapshot',
} as const

export type IpcMessage =
  | { readonly type: typeof ipc.purge, readonly id: string, readonly sel: PurgeSelector, readonly soft: boolean, readonly exact?: ExactEntry }
  | { readonly type: typeof ipc.purgeApply, readonly id: string, readonly sel: PurgeSelector, readonly soft: boolean, readonly exact?: ExactEntry }
  | { readonly type: typeof ipc.purgeApplied, readonly id: string, readonly count: number, readonly error?: string }
  | { readonly type: typeof ipc.purgeDone, readonly id: string, readonly acked: readonly string[], readonly missing: readonly string[] }
  | { readonly type: typeof ipc.lock, readonly id: string, readonly key: string }
  | { readonly type: typeof ipc.lockGrant, readonly id: string, readonly lead: boolean, readonly entry?: Uint8Array, readonly purged?: boolean }
  | { readonly type: typeof ipc.unlock, readonly key: string, readonly entry?: Uint8Array }
  | { readonly type: typeof ipc.detach, readonly id: string }
  | { readonly type: typeof ipc.metricsCollect, readonly id: string }
  | { readonly type: typeof ipc.metricsSnapshot, readonly id: string, readonly metrics: readonly unknown[] | undefined }

const types: ReadonlySet<string> = new Set(Object.values(ipc))

/** True for one of the messages above (prom-client's own messages share the channel). */
export function isIpc (m: unknown): m is IpcMessage {
  return typeof m === 'object' && m !== null && types.has((m as { type?: unknown }).type as string)
}

/** Sends to a worker; one that died meanwhile has nobody waiting any more. */
export function sendTo (w: Worker, m: IpcMessage): void {
  if (w.isConnected()) w.send(m)
}
