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
  get (key: string): Promise<CacheEntry | undefined>
  /** False while the tier skips Redis (down, or its breaker open): the lock skips it too. */
  readonly available: boolean
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
    /** Resolves once this process's write-through of `key` finished (TieredStore.written). */
    readonly written: (key: string) => Promise<void>
    /** How often a losing instance looks for the entry, ms. @default 25 */
    readonly pollInterval?: number
  }
  /** Longest a lock is held and waited for, ms (`cache.lockTimeout`). */
  readonly lockTimeout: number
  readonly logger?: Logger
}

export class MissLock {
  readonly #opts: MissLockOptions
  readonly #log: Logger
  readonly #client: RedisClient | undefined
  readonly #id = randomUUID()
  /** After a failed lock command the lock is skipped for a while, like the tier's own breaker. */
  #skipUntil = 0
  #closed = false

  constructor (opts: MissLockOptions) {
    this.#opts = opts
    this.#log = (opts.logger ?? silentLogger).child({ module: 'miss-lock' })
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
        releaseRedis?.()
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

  /** The cross-instance step: won (with its release), the winner's entry, or undefined (fetch alone). */
  async #redis (key: string): Promise<{ kind: 'won', release: () => void } | { kind: 'entry', entry: CacheEntry, keep: boolean, from: 'redis' } | undefined> {
    const redis = this.#opts.redis
    const c = this.#client
    if (redis === undefined || c === undefined || this.#closed || !c.isReady || !redis.tier.available || this.#skipUntil > Date.now()) return undefined
    const lockKey = `${redis.prefix}lock:${createHash('sha256').update(key).digest('base64url')}`
    const call = <T>(fn: (o: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> => withDeadline(redis.timeout, 'miss lock', fn)
    let won: boolean
    try {
      won = String(await call(o => c.sendCommand(['SET', lockKey, this.#id, 'NX', 'PX', String(this.#opts.lockTimeout)], o))) === 'OK'
    } catch (err) {
      this.#skipUntil = Date.now() + 1000
      this.#log.debug({ err }, 'miss lock: Redis did not answer; fetching alone')
      return undefined
    }
    if (won) {
      const release = (): void => {
        // The write-through first: a loser that finds the lock gone must find the entry too.
        void redis.written(key).then(() => call(o => c.sendCommand(['EVAL', releaseScript, '1', lockKey, this.#id], o))).catch((err: unknown) => {
          this.#log.debug({ err }, 'miss lock: could not release the Redis lock (it expires by itself)')
        })
      }
      // The previous holder may have stored the entry and let go between our
      // read of the tier and our SET: one more read saves a second fetch.
      const landed = await redis.tier.get(key)
      if (landed !== undefined) {
        release()
        publish('redis', 'entry')
        return { kind: 'entry', entry: landed, keep: true, from: 'redis' }
      }
      publish('redis', 'lead')
      return {
        kind: 'won',
        release
      }
    }
    const deadline = Date.now() + this.#opts.lockTimeout
    const interval = redis.pollInterval ?? 25
    while (Date.now() < deadline && !this.#closed) {
      await sleep(interval, undefined, { ref: false })
      const e = await redis.tier.get(key)
      if (e !== undefined) { publish('redis', 'entry'); return { kind: 'entry', entry: e, keep: true, from: 'redis' } }
      let held: unknown
      try {
        held = await call(o => c.sendCommand(['EXISTS', lockKey], o))
      } catch {
        break
      }
      if (held === 0) {
        // Gone: the winner's write-through finished before it let go, so one more read is decisive.
        const last = await redis.tier.get(key)
        if (last !== undefined) { publish('redis', 'entry'); return { kind: 'entry', entry: last, keep: true, from: 'redis' } }
        break
      }
    }
    publish('redis', 'alone')
    return undefined
  }
}

function publish (via: string, outcome: string): void {
  if (lockChannel.hasSubscribers) lockChannel.publish({ via, outcome })
}
