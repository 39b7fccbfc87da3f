/**
 * The tiered store: reads tiers in order (memory → disk → Redis), promotes a
 * hit into the faster tiers, writes through to all. Only the first tier's
 * write is awaited; slower tiers are written fire-and-forget, so a response
 * never waits on disk or Redis (their own queues and timeouts bound the
 * backlog), and their failures are counted, not thrown. `written(key)`
 * lets the one caller that must (the cross-instance miss lock) wait for them.
 *
 * Purges reach every tier and, through its peers (the cluster link to the
 * sibling processes, the Redis purge bus to everyone), every other process
 * and instance; a purge heard from a peer is applied to the tiers of this
 * process only (`purgeLocal`), since the sender purged the shared ones.
 *
 * Ordering (docs/architecture.md, "Coherence"): every purge is first entered
 * in a ban list, as in Varnish. A read that finds an entry in a slower tier
 * and a write-back of a fill are checked against it before they land: a read
 * that started before a ban, or that overlaps a purge still running, does
 * not promote a banned entry (and answers a miss); a fill that started
 * before a ban is not stored (a soft ban stores it marked stale). Bans are
 * stamped with this process's own clock when they are entered, and fills
 * with the same clock when they start, so no two hosts' clocks are compared.
 * A ban lives `banTtl`; when more than `maxBans` are live the oldest one is
 * folded into a floor that bans everything older, so the list stays bounded
 * and never forgets a purge.
 *
 * Metrics (node:diagnostics_channel):
 * - `livery:cache:write_error` `{ tier, error }` — a background write or
 *   promotion into `tier` failed (rejected; a refusal is not an error).
 * - `livery:cache:tier_hit` `{ tier }` — a get was answered by `tier`.
 * - `livery:cache:banned` `{ op: 'promote' | 'store' }` — a promotion or a
 *   write-back was stopped by a ban.
 * `stats()` merges every tier's stats, keyed by tier name.
 */
import { channel } from 'node:diagnostics_channel'
import { liveryError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { silentLogger } from '../log.ts'
import { randomUUID } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { type CacheEntry, softPurged } from './entry.ts'
import type { ExactEntry, PeerReport, PurgeNotice, PurgePeers } from './peers.ts'
import { type CacheStore, type PurgeOptions, type PurgeSelector, type TierStats, matchesSelector } from './store.ts'

const writeErrorChannel = channel('livery:cache:write_error')
const bannedChannel = channel('livery:cache:banned')

/** What a purge did here and who else applied it. */
export interface PurgeReport extends PeerReport {
  /** Entries affected in this process's tiers (the largest count of any tier). */
  readonly purged: number
  /** False when there is nobody to tell (one process, no Redis): `acked` and `missing` are then empty by definition. */
  readonly peers: boolean
}

interface Ban {
  readonly sel: PurgeSelector
  readonly soft: boolean
  readonly gen: number
  /** This process's clock when the ban was entered. */
  readonly at: number
  /** True while the purge is still running in some tier here. */
  pending: boolean
}

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
  /** Spread purges to the other processes and instances, and apply theirs here (cluster link, purge bus). */
  readonly peers?: readonly PurgePeers[]
  /** Closed with the store (the purge bus, whose connections it owns). */
  readonly owned?: ReadonlyArray<{ close (): Promise<void>, destroy (): Promise<void> }>
  readonly logger?: Logger
  /**
   * Clock for promotion ttls and for stamping bans; fills are stamped with
   * the HTTP cache's clock, so the gateway passes the same one. @default Date.now
   */
  readonly now?: () => number
  /** How long a ban is kept, ms: longer than any fill runs (`requestTimeout`). @default 300000 */
  readonly banTtl?: number
  /** Most bans kept; older ones fold into a floor. @default 1000 */
  readonly maxBans?: number
}

export class TieredStore implements CacheStore {
  readonly name = 'tiered'
  readonly syncComplete: boolean
  readonly #tiers: readonly CacheStore[]
  readonly #local: readonly CacheStore[]
  readonly #sharedTiers: readonly CacheStore[]
  readonly #peers: readonly PurgePeers[]
  readonly #owned: ReadonlyArray<{ close (): Promise<void>, destroy (): Promise<void> }>
  readonly #log: Logger
  readonly #now: () => number
  /** Background writes in flight; each tier bounds its own backlog, so this set stays small. */
  readonly #inflight = new Set<Promise<unknown>>()
  /** The same writes by key, for `written(key)`: each resolves whether it stored. */
  readonly #writing = new Map<string, Set<Promise<boolean>>>()
  readonly #bans: Ban[] = []
  readonly #banTtl: number
  readonly #maxBans: number
  /** Purges heard from peers, by id: IPC and Redis may both deliver one; it is applied once. */
  readonly #heard = new LRUCache<string, Promise<number>>({ max: 4096 })
  /** Entries this process wrote to the shared tiers lately: a purge heard meanwhile must purge those too. */
  readonly #recent = new LRUCache<string, CacheEntry>({ max: 10_000, ttl: 5_000, ttlAutopurge: false })
  readonly #banListeners: Array<(id: string, sel: PurgeSelector, soft: boolean) => void> = []
  /** Entries removed by identity (raced write-backs), for as long as bans live. */
  readonly #exact: Array<{ readonly x: ExactEntry, readonly at: number }> = []
  #gen = 0
  /** Everything entered before this generation / clock reading is banned (folded bans). */
  #floorGen = 0
  #floorAt = -Infinity
  #writeErrors = 0
  #readsBelow = 0
  #closed = false

  constructor (opts: TieredStoreOptions) {
    if (opts.tiers.length === 0) throw new TypeError('TieredStore needs at least one tier (cache.memory)')
    const shared = new Set(opts.shared ?? ['redis'])
    this.#tiers = opts.tiers
    // One tier that answers synchronously: the HTTP cache may treat a getSync miss as a miss.
    this.syncComplete = opts.tiers.length === 1 && opts.tiers[0].syncComplete
    this.#local = opts.tiers.filter((s) => !shared.has(s.name))
    this.#sharedTiers = opts.tiers.filter((s) => shared.has(s.name))
    this.#peers = opts.peers ?? []
    this.#owned = opts.owned ?? []
    this.#log = opts.logger ?? silentLogger
    this.#now = opts.now ?? Date.now
    this.#banTtl = opts.banTtl ?? 300_000
    this.#maxBans = opts.maxBans ?? 1000
    for (const p of this.#peers) p.onPurge((n) => this.#heardPurge(n))
  }

  getSync (key: string): CacheEntry | undefined {
    const first = this.#tiers[0]
    return first.getSync?.(key)
  }

  async get (key: string): Promise<CacheEntry | undefined> {
    this.#check()
    const tiers = this.#tiers
    const gen = this.#gen
    if (tiers.length > 1) this.#readsBelow++
    for (let i = 0; i < tiers.length; i++) {
      let e = await tiers[i].get(key)
      if (e === undefined) continue
      if (i > 0) {
        const screened = this.#screenRead(e, gen)
        if (screened === undefined) return undefined
        const deadline = storageDeadline.get(e)
        e = screened
        if (tierHitChannel.hasSubscribers) tierHitChannel.publish({ tier: tiers[i].name })
        const ttl = remainingTtl(e, this.#now(), deadline)
        if (ttl > 0) for (let j = 0; j < i; j++) this.#background(tiers[j], key, e, ttl)
      } else if (tierHitChannel.hasSubscribers) tierHitChannel.publish({ tier: tiers[i].name })
      return e
    }
    // While the slower tiers were asked, a fill of this key may have been
    // stored in memory and its waiting list released: without this second
    // look the request would lead a second fill (issue 12, item 5).
    return tiers[0].getSync?.(key)
  }

  /**
   * Awaits the first tier only; the result is that tier's answer. An entry
   * whose fill started before a ban (`meta.requestTime`, on the same clock)
   * is not stored, or stored soft-purged for a soft ban.
   */
  async put (key: string, entry: CacheEntry, ttlMs: number): Promise<boolean> {
    this.#check()
    if (!(ttlMs > 0)) return false
    const e = this.#screenWrite(entry)
    if (e === undefined) return false
    for (let j = 1; j < this.#tiers.length; j++) this.#background(this.#tiers[j], key, e, ttlMs)
    if (this.#sharedTiers.length > 0 && this.#peers.length > 0) this.#recent.set(key, e)
    return await this.#tiers[0].put(key, e, ttlMs)
  }

  /**
   * Stores in this process's first tier only: an entry another process or
   * instance fetched and stored (its slower tiers hold it already). The
   * caller adopts only when no purge was entered here while it waited for it
   * (HttpCache), so no time check is made: its fill's start was stamped by
   * another process's clock, which could only reject it wrongly (a coarse
   * clock lags up to a few hundred ms on a busy machine). An entry read from
   * Redis (`screen`) is screened as a read is: not while a matching purge
   * runs here. One that is a write-back which raced a purge is purged again
   * by its writer, over every member, before that purge is acknowledged.
   */
  async adopt (key: string, entry: CacheEntry, ttlMs: number, screen = true): Promise<boolean> {
    this.#check()
    if (!(ttlMs > 0)) return false
    const e = screen ? this.#screenRead(entry, this.#gen) : this.refuses(entry) ? undefined : entry
    if (e === undefined) return false
    return await this.#tiers[0].put(key, e, ttlMs)
  }

  /**
   * Writes `entry`, a fill of this process whose write-through to the shared
   * tiers did not store, to them again with a deadline of `timeout` ms (the
   * miss lock's winner: every other instance looks for the entry there).
   * Screened and tracked as put's writes are, so a purge entered since stops
   * it and one heard later knows of it. Resolves whether it stored.
   */
  async rewriteShared (key: string, entry: CacheEntry, timeout: number): Promise<boolean> {
    this.#check()
    const ttl = entry.meta.holdUntil - this.#now()
    const e = ttl > 0 ? this.#screenWrite(entry) : undefined
    if (e === undefined || this.#sharedTiers.length === 0) return false
    for (const tier of this.#sharedTiers) this.#background(tier, key, e, ttl, { timeout })
    if (this.#peers.length > 0) this.#recent.set(key, e)
    return await this.written(key)
  }

  /** Resolves once the background writes of `key` started so far have finished: true when each stored it (never rejects). */
  async written (key: string): Promise<boolean> {
    const set = this.#writing.get(key)
    if (set === undefined) return true
    return (await Promise.all([...set])).every((ok) => ok)
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
   * Purges every tier, then tells the other processes and instances and
   * waits (bounded) for them to apply it. Resolves the largest count of any
   * tier (the same entry usually sits in several). Throws
   * LIVERY_ERR_CACHE_STORE after trying every tier if one failed, or if some
   * peer could not be told: the operator must retry.
   */
  async purge (sel: PurgeSelector, opts: PurgeOptions = {}): Promise<number> {
    const r = await this.purgeReport(sel, opts)
    if (r.missing.length > 0) {
      throw liveryError('LIVERY_ERR_CACHE_STORE', `purge not acknowledged by ${r.missing.join(', ')}`, 'this instance was purged but others may still serve the old copy; retry the purge')
    }
    return r.purged
  }

  /** As `purge`, but resolves who acknowledged and who did not instead of throwing for the latter. */
  async purgeReport (sel: PurgeSelector, opts: PurgeOptions = {}): Promise<PurgeReport> {
    this.#check()
    const soft = opts.soft === true
    const id = randomUUID()
    const ban = this.#ban(sel, soft, id)
    const o = { soft, now: opts.now ?? ban.at }
    // Our own write-backs are ordered before this purge on our Redis connection: nothing raced here.
    if (!soft) this.#takeRaced(sel, ban.at)
    // Each part of the purge that can happen, happens; an error then asks for a retry.
    const local = await this.#purgeTiers(this.#tiers, sel, o).then((n) => ({ n }), (err: unknown) => ({ err }))
    ban.pending = false
    const notice: PurgeNotice = { id, sel, soft }
    const reports = await Promise.all(this.#peers.map((p) => p.publish(notice)))
    if ('err' in local) throw local.err
    return { purged: local.n, peers: reports.length > 0, ...mergeReports(reports) }
  }

  /**
   * Purges the tiers of this process only (what a purge from another member
   * needs). If this process wrote a matching entry to a shared tier shortly
   * before (a fill that was storing while the purge travelled), that
   * write-back may have landed after the sender purged the shared tier, and
   * any member may have promoted it since: the purge is then run again from
   * here over every tier and every member, before this one acknowledges.
   */
  async purgeLocal (sel: PurgeSelector, opts: PurgeOptions & { readonly id?: string } = {}): Promise<number> {
    this.#check()
    const soft = opts.soft === true
    const ban = this.#ban(sel, soft, opts.id ?? randomUUID())
    let raced: Array<[string, CacheEntry]> = []
    try {
      // The receiver's own clock marks soft-purged entries stale: the
      // sender's clock may be skewed against ours.
      if (!soft) raced = this.#takeRaced(sel, ban.at)
      return await this.#purgeTiers(this.#local, sel, { soft, now: ban.at })
    } finally {
      ban.pending = false
      if (raced.length > 0) await this.#purgeRaced(raced)
    }
  }

  /** The entries matching `sel` this process wrote to the shared tiers lately from fills older than `at` (and forgets them). */
  #takeRaced (sel: PurgeSelector, at: number): Array<[string, CacheEntry]> {
    const raced: Array<[string, CacheEntry]> = []
    for (const [key, e] of this.#recent.entries()) {
      if (e.meta.requestTime > at || !matchesSelector(e, sel)) continue
      this.#recent.delete(key)
      raced.push([key, e])
    }
    return raced
  }

  /**
   * Removes, everywhere, these writes of ours to the shared tiers, which may
   * have landed after the sender's purge of them (that purge ran before the
   * notice was sent): by identity, so copies of them go, whichever member
   * promoted them meanwhile, and no fill is banned. Purging again by the
   * selector did the same but banned the refill already under way (2 to 3
   * extra fetches after each hard purge of a hot page); asking Redis whether
   * the write was still there instead missed the copies other members had
   * promoted before a refill overwrote it. Awaited before this member
   * acknowledges the purge it heard, so the sender's answer comes after.
   */
  async #purgeRaced (writes: ReadonlyArray<[string, CacheEntry]>): Promise<void> {
    for (const [key, e] of writes) {
      await this.written(key)
      const exact: ExactEntry = { key, url: e.meta.url, requestTime: e.meta.requestTime, responseTime: e.meta.responseTime, length: e.body.length }
      await this.#applyExact(exact)
      for (const tier of this.#sharedTiers) {
        const t = tier as CacheStore & { deleteIf?: (key: string, e: CacheEntry) => Promise<boolean> }
        await (t.deleteIf !== undefined ? t.deleteIf(key, e) : t.delete(key)).catch((err: unknown) => {
          this.#log.warn({ err, tier: tier.name }, 'removing a raced write-back failed')
        })
      }
      const notice: PurgeNotice = { id: randomUUID(), sel: { urls: [e.meta.url] }, soft: false, exact }
      const r = mergeReports(await Promise.all(this.#peers.map((p) => p.publish(notice))))
      if (r.missing.length > 0) this.#log.warn({ missing: r.missing }, 'removing a raced write-back: not every member acknowledged')
    }
  }

  /** Records `x` (reads and adoptions of it are refused from now on) and removes this process's copies of it. */
  async #applyExact (x: ExactEntry): Promise<number> {
    const horizon = this.#now() - this.#banTtl
    while (this.#exact.length > 0 && (this.#exact[0].at < horizon || this.#exact.length >= this.#maxBans)) this.#exact.shift()
    this.#exact.push({ x, at: this.#now() })
    let n = 0
    for (const tier of this.#local) {
      const c = await tier.get(x.key).catch(() => undefined)
      if (c !== undefined && sameEntry(c, x) && await tier.delete(x.key).catch(() => false)) n++
    }
    return n
  }

  /** True for an entry removed by identity here (a raced write-back): it is neither kept nor served to waiters. */
  refuses (e: CacheEntry): boolean {
    for (const { x } of this.#exact) if (sameEntry(e, x)) return true
    return false
  }

  async clear (): Promise<void> {
    this.#check()
    await Promise.all(this.#tiers.map((s) => s.clear()))
  }

  stats (): Readonly<Record<string, TierStats>> {
    return Object.assign({}, ...this.#tiers.map((s) => s.stats())) as Record<string, TierStats>
  }

  /**
   * Reads that asked the tiers below the first (a `get` with more than one
   * tier): each costs the disk tier a sha256 of the key, and Redis a round
   * trip. Tests read it to show which lookups never leave memory.
   */
  get readsBelow (): number {
    return this.#readsBelow
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
    await Promise.all([...this.#tiers.map((s) => s.close()), ...this.#owned.map((o) => o.close())])
  }

  async destroy (err?: Error): Promise<void> {
    this.#closed = true
    await Promise.all([...this.#tiers.map((s) => s.destroy(err)), ...this.#owned.map((o) => o.destroy())])
  }

  /**
   * Calls `fn` with the purge's id whenever a purge is entered here (before
   * any tier is purged): waiting lists detach their flights. One purge heard
   * by several processes has one id everywhere.
   */
  onBan (fn: (id: string, sel: PurgeSelector, soft: boolean) => void): void {
    this.#banListeners.push(fn)
  }

  /** Bans live now (for /_livery/status and tests). */
  get bans (): number {
    this.#expireBans()
    return this.#bans.length
  }

  #check (): void {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', 'cache store')
  }

  #background (tier: CacheStore, key: string, entry: CacheEntry, ttl: number, opts?: { readonly timeout: number }): void {
    // `opts` only for a tier whose put takes a deadline (the Redis tier).
    const put = tier.put as (key: string, entry: CacheEntry, ttl: number, opts?: { readonly timeout: number }) => Promise<boolean>
    const p: Promise<boolean> = put.call(tier, key, entry, ttl, opts).catch((err: unknown) => {
      // A failed cache write never fails the response (STYLE §2.12); count it.
      this.#writeErrors++
      if (writeErrorChannel.hasSubscribers) writeErrorChannel.publish({ tier: tier.name, error: err })
      this.#log.debug({ err, tier: tier.name }, 'background cache write failed')
      return false
    }).finally(() => {
      this.#inflight.delete(p)
      const set = this.#writing.get(key)
      if (set !== undefined) { set.delete(p); if (set.size === 0) this.#writing.delete(key) }
    })
    this.#inflight.add(p)
    let set = this.#writing.get(key)
    if (set === undefined) { set = new Set(); this.#writing.set(key, set) }
    set.add(p)
  }

  #heardPurge (n: PurgeNotice): Promise<number> {
    let p = this.#heard.get(n.id)
    if (p === undefined) {
      p = this.#closed ? Promise.resolve(0) : n.exact !== undefined ? this.#applyExact(n.exact) : this.purgeLocal(n.sel, { soft: n.soft, id: n.id })
      // A failed application is not remembered: hearing it again retries it.
      p.catch(() => { this.#heard.delete(n.id) })
      this.#heard.set(n.id, p)
    }
    return p
  }

  #ban (sel: PurgeSelector, soft: boolean, id: string): Ban {
    this.#expireBans()
    const ban: Ban = { sel, soft, gen: ++this.#gen, at: this.#now(), pending: true }
    this.#bans.push(ban)
    for (const fn of this.#banListeners) fn(id, sel, soft)
    while (this.#bans.length > this.#maxBans) {
      const old = this.#bans.shift()!
      // Folding a still-running or soft ban into the floor would hard-ban more
      // than it asked for; a floor only ever errs towards a miss.
      this.#floorGen = Math.max(this.#floorGen, old.gen)
      this.#floorAt = Math.max(this.#floorAt, old.at)
    }
    return ban
  }

  #expireBans (): void {
    const horizon = this.#now() - this.#banTtl
    while (this.#bans.length > 0 && !this.#bans[0].pending && this.#bans[0].at < horizon) this.#bans.shift()
  }

  /** A slower tier's answer to a read that started at generation `gen`: banned (undefined), soft-purged, or as is. */
  #screenRead (e: CacheEntry, gen: number): CacheEntry | undefined {
    if (this.#exact.length > 0 && this.refuses(e)) return this.#stopped('promote')
    if (this.#bans.length === 0 && gen >= this.#floorGen) return e
    if (gen < this.#floorGen) return this.#stopped('promote')
    let out = e
    for (const b of this.#bans) {
      if ((b.gen <= gen && !b.pending) || !matchesSelector(e, b.sel)) continue
      if (!b.soft) return this.#stopped('promote')
      out = softPurged(out, b.at)
    }
    return out
  }

  /** An entry about to be stored by a fill that started at `meta.requestTime`. */
  #screenWrite (e: CacheEntry): CacheEntry | undefined {
    if (this.#bans.length === 0 && this.#floorAt === -Infinity) return e
    const started = e.meta.requestTime
    if (started < this.#floorAt) return this.#stopped('store')
    let out = e
    for (const b of this.#bans) {
      if (b.at <= started || !matchesSelector(e, b.sel)) continue
      if (!b.soft) return this.#stopped('store')
      out = softPurged(out, b.at)
    }
    return out
  }

  #stopped (op: 'promote' | 'store'): undefined {
    if (bannedChannel.hasSubscribers) bannedChannel.publish({ op })
    return undefined
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

/** Who acknowledged over every transport: a member acknowledged on any of them is not missing. */
function mergeReports (reports: readonly PeerReport[]): PeerReport {
  const acked = new Set<string>()
  for (const r of reports) for (const a of r.acked) acked.add(a)
  const missing = new Set<string>()
  for (const r of reports) for (const m of r.missing) if (!acked.has(m)) missing.add(m)
  return { acked: [...acked], missing: [...missing] }
}

function sameEntry (e: CacheEntry, x: ExactEntry): boolean {
  return e.meta.requestTime === x.requestTime && e.meta.responseTime === x.responseTime && e.body.length === x.length && e.meta.url === x.url
}

/**
 * How long a promoted copy may live in the faster tiers: what the lower tier
 * said it has left. When it could not say (Redis's PTTL raced the key's
 * expiry), the copy is not promoted at all, rather than guessed from the
 * entry's own deadlines, which would resurrect an entry the tier just dropped.
 */
function remainingTtl (_e: CacheEntry, now: number, deadline: number | undefined): number {
  return deadline === undefined ? 0 : deadline - now
}
