/**
 * A cluster worker's side of the IPC with the primary (src/pool/cluster.ts),
 * for cache coherence between the processes of one gateway:
 *
 * - purges: the worker that received a purge applies it, then asks the
 *   primary to broadcast it; every other worker applies it to its own tiers
 *   and acknowledges; the primary answers with who did (bounded wait).
 * - the waiting list of a cold miss: the first process to miss a key leads
 *   and fetches; the others wait on the primary, which relays the leader's
 *   encoded entry to them when it is done (or tells them to go alone when
 *   the leader stored nothing, timed out or died).
 *
 * Every wait is bounded: if the primary does not answer, a purge reports the
 * siblings as missing and a miss leads on its own, so a wedged primary
 * costs coalescing, never requests. Message types are in `ipc.ts`.
 */
import cluster from 'node:cluster'
import { randomUUID } from 'node:crypto'
import type { GatewayGrant, GatewayLock, PeerReport, PurgeApplier, PurgeNotice, PurgePeers } from '../cache/peers.ts'
import { silentLogger, type Logger } from '../log.ts'
import { ipc, isIpc, type IpcMessage } from './ipc.ts'

export interface ClusterLinkOptions {
  /** How long a purge waits for the siblings' acknowledgements, ms. @default 2000 */
  readonly ackTimeout?: number
  /** How long a miss waits on the primary before leading alone, ms (`cache.lockTimeout`). @default 5000 */
  readonly lockTimeout?: number
  readonly logger?: Logger
}

interface Pending<T> {
  resolve: (v: T) => void
  timer: NodeJS.Timeout
}

/** Most requests waiting on the primary at once; beyond it a miss leads alone (a bounded map). */
const maxPending = 20_000

export class ClusterLink implements PurgePeers, GatewayLock {
  readonly #send: (m: IpcMessage) => void
  readonly #ackTimeout: number
  readonly #lockTimeout: number
  readonly #log: Logger
  readonly #purges = new Map<string, Pending<PeerReport>>()
  readonly #locks = new Map<string, Pending<GatewayGrant>>()
  readonly #onMessage: (m: unknown) => void
  #apply: PurgeApplier | undefined
  #closed = false

  /** Undefined outside a cluster worker. */
  static create (opts: ClusterLinkOptions = {}): ClusterLink | undefined {
    const send = process.send?.bind(process)
    if (!cluster.isWorker || send === undefined) return undefined
    return new ClusterLink(m => { if (process.connected) send(m) }, opts)
  }

  private constructor (send: (m: IpcMessage) => void, opts: ClusterLinkOptions) {
    this.#send = send
    this.#ackTimeout = opts.ackTimeout ?? 2000
    this.#lockTimeout = opts.lockTimeout ?? 5000
    this.#log = (opts.logger ?? silentLogger).child({ module: 'cluster-link' })
    this.#onMessage = (m: unknown) => { this.#receive(m) }
    process.on('message', this.#onMessage)
  }

  onPurge (apply: PurgeApplier): void {
    this.#apply = apply
  }

  publish (notice: PurgeNotice): Promise<PeerReport> {
    if (this.#closed || this.#purges.size >= maxPending) return Promise.resolve({ acked: [], missing: ['sibling processes'] })
    return new Promise<PeerReport>(resolve => {
      // The primary's own wait is ackTimeout; this one covers a primary that never answers.
      const timer = setTimeout(() => {
        this.#purges.delete(notice.id)
        resolve({ acked: [], missing: ['the cluster primary'] })
      }, this.#ackTimeout + 1000)
      timer.unref()
      this.#purges.set(notice.id, { resolve, timer })
      this.#send({ type: ipc.purge, id: notice.id, sel: notice.sel, soft: notice.soft, ...(notice.exact === undefined ? {} : { exact: notice.exact }) })
    })
  }

  acquire (key: string): Promise<GatewayGrant> {
    if (this.#closed || this.#locks.size >= maxPending) return Promise.resolve({ lead: true })
    const id = randomUUID()
    return new Promise<GatewayGrant>(resolve => {
      const timer = setTimeout(() => {
        this.#locks.delete(id)
        resolve({ lead: false, entry: undefined, keep: false })
      }, this.#lockTimeout + 1000)
      timer.unref()
      this.#locks.set(id, { resolve, timer })
      this.#send({ type: ipc.lock, id, key })
    })
  }

  release (key: string, entry: Uint8Array | undefined): void {
    if (this.#closed) return
    this.#send({ type: ipc.unlock, key, entry })
  }

  detachAll (purgeId: string): void {
    if (this.#closed) return
    // The same channel as acquire(), so the primary sees this before any later lock request.
    this.#send({ type: ipc.detach, id: purgeId })
  }

  close (): void {
    if (this.#closed) return
    this.#closed = true
    process.off('message', this.#onMessage)
    for (const p of this.#purges.values()) { clearTimeout(p.timer); p.resolve({ acked: [], missing: ['sibling processes (closing)'] }) }
    for (const p of this.#locks.values()) { clearTimeout(p.timer); p.resolve({ lead: true }) }
    this.#purges.clear()
    this.#locks.clear()
  }

  #receive (m: unknown): void {
    if (!isIpc(m)) return
    switch (m.type) {
      case ipc.purgeApply: {
        const apply = this.#apply
        const id = m.id
        if (apply === undefined) { this.#send({ type: ipc.purgeApplied, id, count: 0 }); return }
        apply({ id, sel: m.sel, soft: m.soft, ...(m.exact === undefined ? {} : { exact: m.exact }) }).then(
          count => { this.#send({ type: ipc.purgeApplied, id, count }) },
          (err: unknown) => {
            this.#log.warn({ err }, 'a purge from a sibling process failed here')
            this.#send({ type: ipc.purgeApplied, id, count: 0, error: err instanceof Error ? err.message : String(err) })
          },
        )
        return
      }
      case ipc.purgeDone: {
        const p = this.#purges.get(m.id)
        if (p === undefined) return
        this.#purges.delete(m.id)
        clearTimeout(p.timer)
        p.resolve({ acked: m.acked, missing: m.missing })
        return
      }
      case ipc.lockGrant: {
        const p = this.#locks.get(m.id)
        if (p === undefined) return
        this.#locks.delete(m.id)
        clearTimeout(p.timer)
        p.resolve(m.lead ? { lead: true } : { lead: false, entry: m.entry, keep: m.purged !== true })
        return
      }
      default:
    }
  }
}
