/**
 * What the cache needs from the processes and instances it shares a site
 * with (docs/architecture.md, "Coherence"). Two transports implement it:
 * the cluster link (src/pool/cluster-link.ts: the primary relays between the
 * processes of one gateway over IPC) and the Redis purge bus (purge-bus.ts:
 * every process of every instance). The cache never knows which it has.
 */
import type { PurgeSelector } from './store.ts'

/**
 * One entry by identity (its fill's request and response times, its body
 * length): a write-back that may have raced a purge, removed wherever a copy
 * of that very entry is, and nothing else (TieredStore.purgeLocal).
 */
export interface ExactEntry {
  readonly key: string
  readonly url: string
  readonly requestTime: number
  readonly responseTime: number
  readonly length: number
}

/** One purge as it travels: `id` lets a member that hears it twice (IPC and Redis) apply it once. */
export interface PurgeNotice {
  readonly id: string
  readonly sel: PurgeSelector
  readonly soft: boolean
  /** Set: only copies of this very entry are removed, and no fill is banned. */
  readonly exact?: ExactEntry
}

/** Who applied a purge: member names (`host:pid` for Redis members, `pid N` for sibling processes). */
export interface PeerReport {
  readonly acked: readonly string[]
  /** Live members that did not acknowledge within the bounded wait (or a transport that failed). */
  readonly missing: readonly string[]
}

export type PurgeApplier = (notice: PurgeNotice) => Promise<number>

export interface PurgePeers {
  /** Tells every other member and resolves once they acknowledged it, or the bounded wait ended. Never rejects. */
  publish (notice: PurgeNotice): Promise<PeerReport>
  /** Sets the function that applies a purge heard from another member to this process's own tiers. */
  onPurge (apply: PurgeApplier): void
}

/** The gateway-wide waiting list for a cold miss (held by the cluster primary). */
export type GatewayGrant =
  /** This process leads: it fetches and must call `release`. */
  | { readonly lead: true }
  /**
   * Another process led: its encoded entry, or undefined when it stored
   * nothing (go upstream alone). `keep` is false when a purge came while it
   * fetched: the entry may answer the requests that waited, and is not stored.
   */
  | { readonly lead: false, readonly entry: Uint8Array | undefined, readonly keep: boolean }

export interface GatewayLock {
  acquire (key: string): Promise<GatewayGrant>
  /** Ends this process's lead on `key`, handing `entry` (encoded) to the processes waiting on it. */
  release (key: string, entry: Uint8Array | undefined): void
  /**
   * Purge `purgeId` was entered here: flights running now take no new
   * waiters. Ordered before any later `acquire`; only the first process of
   * the gateway to enter a purge detaches (the later ones would detach the
   * fresh fills started since).
   */
  detachAll (purgeId: string): void
}
