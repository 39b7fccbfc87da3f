/**
 * The tiered store: reads tiers in order (memory → disk → Redis), promotes a
 * hit into the faster tiers, writes through to all. Only the first tier's
 * write is awaited; slower tiers are written fire-and-forget, so a response
 * never waits on disk or Redis (their own queues and timeouts bound the
 * backlog), and their failures are counted, not thrown.
 *
 * Purges reach every tier and, with a purge bus, every other instance: the
 * bus applies a remote purge to the local tiers only (`purgeLocal`), since
 * the sender already purged the shared ones.
 *
 * Metrics (node:diagnostics_channel):
 * - `livery:cache:write_error` `{ tier, error }` — a background write or
 *   promotion into `tier` failed (rejected; a refusal is not an error).
 * - `livery:cache:tier_hit` `{ tier }` — a get was answered by `tier`.
 * `stats()` merges every tier's stats, keyed by tier name.
 */
import { channel } from 'node:diagnostics_channel'
import { liveryError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { silentLogger } from '../log.ts'
import type { CacheEntry } from './entry.ts'
import type { PurgeBus } from './purge-bus.ts'
import type { CacheStore, PurgeOptions, PurgeSelector, TierStats } from './store.ts'

const writeErrorChannel = channel('livery:cache:write_error')

/**
 * When a slower tier's copy of an entry stops being stored (ms since epoch),
 * recorded by the disk and Redis tiers on each get. A promoted copy must not
 * outlive the one it came from (else an entry put with a short ttl would be
 * kept by promotion for as long as its metadata allows). A WeakMap, because
 * `CacheEntry` has no field for it; see the report for an interface change.
 */
export const storageDeadline = new WeakMap<CacheEntry, number>()
const tierHitChannel = channel('livery:cache:tier_hit')

export interface TieredStoreOptions {
  /** Fastest first: typically memory, disk, Redis. At least one. */
  readonly tiers: readonly CacheStore[]
  /**
   * Names of tiers shared by all instances (Redis). A purge received from
   * another instance skips them, since the sender purged them already.
   * @default ['redis']
   */
  readonly shared?: readonly string[]
  /** Spreads purges to other instances and applies theirs here; closed with the store. */
  readonly bus?: PurgeBus
  readonly logger?: Logger
  /** Clock for promotion ttls. @default Date.now */
  readonly now?: () => number
}

export class TieredStore implements CacheStore {
  readonly name = 'tiered'
  readonly syncComplete = false
  readonly #tiers: readonly CacheStore[]
  readonly #local: readonly CacheStore[]
  readonly #bus: PurgeBus | undefined
  readonly #log: Logger
  readonly #now: () => number
  /** Background writes in flight; each tier bounds its own backlog, so this set stays small. */
  readonly #inflight = new Set<Promise<unknown>>()
  #writeErrors = 0
  #closed = false

  constructor (opts: TieredStoreOptions) {
    if (opts.tiers.length === 0) throw new TypeError('TieredStore needs at least one tier (cache.memory)')
    const shared = new Set(opts.shared ?? ['redis'])
    this.#tiers = opts.tiers
    this.#local = opts.tiers.filter((s) => !shared.has(s.name))
    this.#bus = opts.bus
    this.#log = opts.logger ?? silentLogger
    this.#now = opts.now ?? Date.now
    opts.bus?.onPurge((sel, o) => this.purgeLocal(sel, o))
  }

  getSync (key: string): CacheEntry | undefined {
    const first = this.#tiers[0]
    return first.getSync?.(key)
  }

  async get (key: string): Promise<CacheEntry | undefined> {
    this.#check()
    const tiers = this.#tiers
    for (let i = 0; i < tiers.length; i++) {
      const e = await tiers[i].get(key)
      if (e === undefined) continue
      if (tierHitChannel.hasSubscribers) tierHitChannel.publish({ tier: tiers[i].name })
      if (i > 0) {
        const ttl = remainingTtl(e, this.#now(), storageDeadline.get(e))
        if (ttl > 0) for (let j = 0; j < i; j++) this.#background(tiers[j], key, e, ttl)
      }
      return e
    }
    return undefined
  }

  /** Awaits the first tier only; the result is that tier's answer. */
  async put (key: string, entry: CacheEntry, ttlMs: number): Promise<boolean> {
    this.#check()
    if (!(ttlMs > 0)) return false
    for (let j = 1; j < this.#tiers.length; j++) this.#background(this.#tiers[j], key, entry, ttlMs)
    return await this.#tiers[0].put(key, entry, ttlMs)
  }

  /** Awaits every tier, so a get after delete never finds an older copy below. */
  async delete (key: string): Promise<boolean> {
    this.#check()
    const r = await Promise.all(this.#tiers.map((s) => s.delete(key)))
    return r.includes(true)
  }

  async * keys (): AsyncIterable<string> {
    this.#check()
    const seen = new Set<string>()
    for (const s of this.#tiers) {
      for await (const k of s.keys()) {
        if (seen.has(k)) continue
        seen.add(k)
        yield k
      }
    }
  }

  /**
   * Purges every tier, then tells the other instances. Resolves the largest
   * count of any tier (the same entry usually sits in several). Throws
   * LIVERY_ERR_CACHE_STORE after trying every tier if one failed, or if the
   * other instances could not be told: the operator must retry.
   */
  async purge (sel: PurgeSelector, opts: PurgeOptions = {}): Promise<number> {
    this.#check()
    const now = opts.now ?? this.#now()
    const o = { ...opts, now }
    // Other instances are told only after the shared tier was purged: told
    // earlier, they drop their memory copy, and a request arriving before
    // the shared tier's purge promotes the purged entry back from Redis.
    // They are told even when a tier here failed: each part of the purge
    // that can happen, happens; the error then asks for a retry.
    const local = await this.#purgeTiers(this.#tiers, sel, o).then((n) => ({ n }), (err: unknown) => ({ err }))
    const told = this.#bus === undefined ? true : await this.#bus.publish(sel, o)
    if ('err' in local) throw local.err
    if (!told) throw liveryError('LIVERY_ERR_CACHE_STORE', 'purge bus', 'this instance was purged but the other instances could not be told; retry the purge')
    return local.n
  }

  /** Purges the tiers of this instance only (what a remote purge needs). */
  async purgeLocal (sel: PurgeSelector, opts: PurgeOptions = {}): Promise<number> {
    this.#check()
    return await this.#purgeTiers(this.#local, sel, opts)
  }

  async clear (): Promise<void> {
    this.#check()
    await Promise.all(this.#tiers.map((s) => s.clear()))
  }

  stats (): Readonly<Record<string, TierStats>> {
    return Object.assign({}, ...this.#tiers.map((s) => s.stats())) as Record<string, TierStats>
  }

  /** Background writes and promotions that failed. */
  get writeErrors (): number {
    return this.#writeErrors
  }

  /** Resolves when the background writes started so far have finished. */
  async settled (): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight])
  }

  /** Lets background writes finish, then closes every tier. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.settled()
    // The store owns its bus: left open, its two Redis connections would
    // keep a closed gateway's process alive and keep applying remote purges.
    await Promise.all([...this.#tiers.map((s) => s.close()), this.#bus?.close()])
  }

  async destroy (err?: Error): Promise<void> {
    this.#closed = true
    await Promise.all([...this.#tiers.map((s) => s.destroy(err)), this.#bus?.destroy()])
  }

  #check (): void {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', 'cache store')
  }

  #background (tier: CacheStore, key: string, entry: CacheEntry, ttl: number): void {
    const p = tier.put(key, entry, ttl).catch((err: unknown) => {
      // A failed cache write never fails the response (STYLE §2.12); count it.
      this.#writeErrors++
      if (writeErrorChannel.hasSubscribers) writeErrorChannel.publish({ tier: tier.name, error: err })
      this.#log.debug({ err, tier: tier.name }, 'background cache write failed')
    }).finally(() => { this.#inflight.delete(p) })
    this.#inflight.add(p)
  }

  async #purgeTiers (tiers: readonly CacheStore[], sel: PurgeSelector, opts: PurgeOptions): Promise<number> {
    const results = await Promise.allSettled(tiers.map((s) => s.purge(sel, opts)))
    let n = 0
    const failed: string[] = []
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') n = Math.max(n, r.value)
      else {
        failed.push(`${tiers[i].name}: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`)
        this.#log.warn({ err: r.reason, tier: tiers[i].name }, 'purge failed on a cache tier')
      }
    })
    if (failed.length > 0) throw liveryError('LIVERY_ERR_CACHE_STORE', failed.join('; '), 'purge incomplete; the other tiers were purged, retry the purge')
    return n
  }
}

/** How long a promoted copy may live: until the source copy goes, or else the entry's last useful moment. */
/**
 * How long a promoted copy may live in the faster tiers: what the lower tier
 * said it has left. When it could not say (Redis's PTTL raced the key's
 * expiry), the copy is not promoted at all, rather than guessed from the
 * entry's own deadlines, which would resurrect an entry the tier just dropped.
 */
function remainingTtl (_e: CacheEntry, now: number, deadline: number | undefined): number {
  return deadline === undefined ? 0 : deadline - now
}
