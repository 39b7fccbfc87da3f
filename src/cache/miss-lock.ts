/**
 * The waiting list of a miss above one process (docs/architecture.md,
 * "Coherence"). The process's own coalescer (coalesce.ts) picks one local
 * leader per key; that leader then asks, in order:
 *
 * 1. the gateway (the cluster primary, over IPC): one process of the
 *    gateway leads; the others wait and get the leader's entry relayed;
 * 2. Redis, for a cold miss: `SET lock NX PX lockTimeout`. The winner
 *    fetches; an instance that lost polls the shared tier for the winner's
 *    entry, and fetches itself once the lock is gone without one. The
 *    winner deletes the lock only after its write-through to Redis finished,
 *    so a loser that sees the lock gone and no entry knows there is none.
 *
 * Every step is bounded (`lockTimeout`, the Redis tier's own deadline) and
 * every failure falls back to fetching: a lock is an optimisation, never a
 * reason to fail or hang a request.
 *
 * diagnostics_channel `livery:cache:miss_lock` `{ via: 'gateway' | 'redis', outcome: 'lead' | 'entry' | 'alone' }`.
 */
import { channel } from 'node:diagnostics_channel'
import { createHash, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { closeRedisClient, createRedisClient, destroyRedisClient, withDeadline, type RedisClient } from '../redis-client.ts'
import type { Logger } from '../log.ts'
import { silentLogger } from '../log.ts'
import { type CacheEntry, decodeEntry, encodeEntry } from './entry.ts'
import type { GatewayLock } from './peers.ts'

const lockChannel = channel('livery:cache:miss_lock')
// Deletes the lock only if this process still holds it.
const releaseScript = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"

export type MissGrant =
  /** Fetch, then call `done` with what was stored (undefined: nothing). */
  | { readonly kind: 'lead', done (entry: CacheEntry | undefined): void }
  /** Another process or instance fetched it; `keep`: store it here too (false when a purge came meanwhile). */
  | { readonly kind: 'entry', readonly entry: CacheEntry, readonly keep: boolean, readonly from: 'gateway' | 'redis' }
  /** Nobody will hand an entry over: fetch, and tell nobody. */
  | { readonly kind: 'alone' }

export interface SharedTier {
  /** `timeout`: the lock's own deadline, sent even while the tier's breaker is open. */
  get (key: string, opts?: { readonly timeout?: number }): Promise<CacheEntry | undefined>
}

export interface MissLockOptions {
  /** The cluster primary's waiting list (a cluster worker's link). */
  readonly gateway?: GatewayLock
  readonly redis?: {
    readonly url: string
    readonly prefix: string
    /** Deadline of one lock command, ms (`cache.redis.timeout`). */
    readonly timeout: number
    /** The Redis tier, polled for the winner's entry. */
    readonly tier: SharedTier
    /** Resolves once this process's write-through of `key` finished, true when it stored (TieredStore.written). */
    readonly written: (key: string) => Promise<boolean>
    /**
     * Writes this process's fill to the shared tier again with a deadline of
     * `timeout` ms, screened by the bans as a put is (TieredStore.rewriteShared).
     */
    readonly rewrite?: (key: string, entry: CacheEntry, timeout: number) => Promise<boolean>
    /** How often a losing instance looks for the entry, ms. @default 25 */
    readonly pollInterval?: number
  }
  /** Longest a lock is held and waited for, ms (`cache.lockTimeout`). */
  readonly lockTimeout: number
  /**
   * Deadline of one lock command or lock read, ms. @default the larger of
   * 1 s and `redis.timeout`, at most `lockTimeout`
   */
  readonly callTimeout?: number
  readonly logger?: Logger
}

export class MissLock {
  readonly #opts: MissLockOptions
  readonly #log: Logger
  readonly #client: RedisClient | undefined
  readonly #id = randomUUID()
  /** After a lock that Redis never answered, the lock is skipped for a while. */
  #skipUntil = 0
  readonly #callTimeout: number
  #closed = false

  constructor (opts: MissLockOptions) {
    this.#opts = opts
    this.#log = (opts.logger ?? silentLogger).child({ module: 'miss-lock' })
    this.#callTimeout = opts.callTimeout ?? Math.min(opts.lockTimeout, Math.max(1000, opts.redis?.timeout ?? 0))
    if (opts.redis !== undefined) {
      this.#client = createRedisClient({ url: opts.redis.url, connectTimeout: opts.redis.timeout, logger: this.#log, role: 'miss lock' })
      this.#client.connect().catch((err: unknown) => {
        this.#log.debug({ err }, 'single-flight across instances is off until Redis answers')
      })
    }
  }

  /** `cold`: nothing is stored for the key (only then is Redis asked: a revalidation has its own copy to serve). */
  async acquire (key: string, cold: boolean): Promise<MissGrant> {
    let releaseGateway: ((entry: CacheEntry | undefined) => void) | undefined
    const gw = this.#opts.gateway
    if (gw !== undefined && !this.#closed) {
      const g = await gw.acquire(key)
      if (!g.lead) {
        const entry = g.entry === undefined ? undefined : this.#decode(g.entry, key)
        publish('gateway', entry === undefined ? 'alone' : 'entry')
        return entry === undefined ? { kind: 'alone' } : { kind: 'entry', entry, keep: g.keep, from: 'gateway' }
      }
      publish('gateway', 'lead')
      releaseGateway = (entry) => { gw.release(key, entry === undefined ? undefined : encodeEntry(entry)) }
    }
    const r = cold ? await this.#redis(key) : undefined
    if (r !== undefined && r.kind === 'entry') {
      releaseGateway?.(r.entry)
      return r
    }
    const releaseRedis = r?.kind === 'won' ? r.release : undefined
    if (releaseGateway === undefined && releaseRedis === undefined) return { kind: 'alone' }
    let done = false
    return {
      kind: 'lead',
      done: (entry) => {
        if (done) return
        done = true
        releaseGateway?.(entry)
        releaseRedis?.(entry)
      }
    }
  }

  /** After a purge here: the gateway's running flights take no new waiters (they may bring the purged copy). */
  detachAll (purgeId: string): void {
    this.#opts.gateway?.detachAll(purgeId)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#client !== undefined) await closeRedisClient(this.#client, this.#log)
  }

  async destroy (): Promise<void> {
    this.#closed = true
    if (this.#client !== undefined) destroyRedisClient(this.#client, this.#log)
  }

  #decode (bytes: Uint8Array, key: string): CacheEntry | undefined {
    try {
      return decodeEntry(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), key, 'memory')
    } catch (err) {
      this.#log.warn({ err, key }, 'an entry relayed by a sibling process did not decode; fetching it here')
      return undefined
    }
  }

  /**
   * The cross-instance step: won (with its release), the winner's entry, or
   * undefined (fetch alone). Bounded by `lockTimeout` as a whole, and each
   * command by `callTimeout`, which is longer than the request-path deadline
   * of the tier: a burst of cold requests is when Redis answers slowest, and
   * an instance that gave up on the lock then was a second fetch (two of
   * four runs of bench/coherence on a busy machine). A command that did not
   * answer is sent again rather than taken for a refusal; only a Redis that
   * is not connected, or that answered none of them, lets the miss fetch
   * alone.
   */
  async #redis (key: string): Promise<{ kind: 'won', release: (entry: CacheEntry | undefined) => void } | { kind: 'entry', entry: CacheEntry, keep: boolean, from: 'redis' } | undefined> {
    const redis = this.#opts.redis
    const c = this.#client
    if (redis === undefined || c === undefined || this.#closed || !c.isReady || this.#skipUntil > Date.now()) return undefined
    const lockKey = `${redis.prefix}lock:${createHash('sha256').update(key).digest('base64url')}`
    const callTimeout = this.#callTimeout
    const call = <T>(fn: (o: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> => withDeadline(callTimeout, 'miss lock', fn)
    // Past the tier's breaker and with the lock's deadline: one read saves a fetch.
    const read = (): Promise<CacheEntry | undefined> => redis.tier.get(key, { timeout: callTimeout }).catch(() => undefined)
    const found = (entry: CacheEntry): { kind: 'entry', entry: CacheEntry, keep: boolean, from: 'redis' } => {
      publish('redis', 'entry')
      return { kind: 'entry', entry, keep: true, from: 'redis' }
    }
    const release = (entry: CacheEntry | undefined): void => {
      // The write-through first: a loser that finds the lock gone must find the entry too.
      void redis.written(key).then(async (stored) => {
        // A write-through that timed out under load is sent again with the lock's deadline, or every loser would fetch.
        if (!stored && entry !== undefined && entry.meta.vary.length === 0 && redis.rewrite !== undefined) await redis.rewrite(key, entry, callTimeout)
        await call(o => c.sendCommand(['EVAL', releaseScript, '1', lockKey, this.#id], o))
      }).catch((err: unknown) => {
        this.#log.debug({ err }, 'miss lock: could not release the Redis lock (it expires by itself)')
      })
    }
    const deadline = Date.now() + this.#opts.lockTimeout
    const interval = redis.pollInterval ?? 25
    let answered = false
    let unsure = false
    while (Date.now() < deadline && !this.#closed && c.isReady) {
      let won: boolean
      try {
        won = String(await call(o => c.sendCommand(['SET', lockKey, this.#id, 'NX', 'PX', String(this.#opts.lockTimeout)], o))) === 'OK'
        answered = true
        // A SET of ours that timed out may have landed after all: then the lock is ours.
        if (!won && unsure) won = String(await call(o => c.sendCommand(['GET', lockKey], o))) === this.#id
      } catch (err) {
        unsure = true
        this.#log.debug({ err }, 'miss lock: Redis did not answer the lock; asking again')
        continue
      }
      if (won) {
        // The previous holder may have stored the entry and let go between our
        // read of the tier and our SET: one more read saves a second fetch.
        const landed = await read()
        if (landed !== undefined) {
          release(undefined)
          return found(landed)
        }
        publish('redis', 'lead')
        return { kind: 'won', release }
      }
      // Another instance fetches: wait for its entry (its write-through lands before it lets go).
      while (Date.now() < deadline && !this.#closed) {
        await sleep(interval, undefined, { ref: false })
        const e = await read()
        if (e !== undefined) return found(e)
        let held: unknown
        try {
          held = await call(o => c.sendCommand(['EXISTS', lockKey], o))
        } catch {
          // No answer is not an answer: the holder may still be fetching.
          continue
        }
        if (held === 0) {
          // Gone: the winner's write-through finished before it let go, so one more read is decisive.
          const last = await read()
          if (last !== undefined) return found(last)
          // It stored nothing (uncacheable, or banned by a purge): fetch here, as a waiter of a local flight does.
          publish('redis', 'alone')
          return undefined
        }
      }
    }
    // Redis answered nothing in a whole lockTimeout: skip it for a while rather than hold every cold miss as long.
    if (!answered) this.#skipUntil = Date.now() + 1000
    publish('redis', 'alone')
    return undefined
  }
}

function publish (via: string, outcome: string): void {
  if (lockChannel.hasSubscribers) lockChannel.publish({ via, outcome })
}
