/**
 * Single-flight across instances (DESIGN §3): with Redis configured, one
 * fetch job per URL runs in the whole deployment, not one per process.
 *
 * The instance whose `SET lock NX PX` wins fetches and leaves its result in
 * Redis (the fetch pool's binary entry format, with its checksum) for a
 * short while; the others poll for a result written after they started
 * waiting and use it instead of asking the origin. Redis is only ever an
 * optimisation: when it is slow or down (every call is bounded by
 * `timeout`), or the holder finishes without sharing a result, an instance
 * simply fetches itself. Waiting is bounded by the job's own deadline signal.
 *
 * diagnostics_channel: `livery:fetch:shared` `{ url }` when a result came
 * from another instance; `livery:fetch:lock_error` `{ error }` when Redis
 * failed (the job then fetched alone).
 */
import { channel } from 'node:diagnostics_channel'
import { createHash, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { once } from 'node:events'
import { bufferReplies, closeRedisClient, createRedisClient, destroyRedisClient, type RedisClient } from '../redis-client.ts'
import type { Logger } from '../log.ts'
import { silentLogger } from '../log.ts'
import { decodeEntry, encodeEntry } from './store.ts'
import type { FetchLock, FetchedResource } from './types.ts'

const sharedChannel = channel('livery:fetch:shared')
const errorChannel = channel('livery:fetch:lock_error')
// Deletes the lock only if this instance still holds it.
const releaseScript = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"

export interface RedisFetchLockOptions {
  readonly url: string
  /** Key prefix (`cache.redis.prefix`). */
  readonly prefix: string
  /** Budget of one Redis call in ms (`cache.redis.timeout`). */
  readonly timeout: number
  /** Longest a lock is held: the fetch job's total deadline (`fetch.timeouts.total`). */
  readonly lockTtl: number
  /** How often a waiting instance looks for the holder's result. @default 50 ms */
  readonly pollInterval?: number
  /** How long a shared result stays in Redis. @default 30 s */
  readonly resultTtl?: number
  readonly logger?: Logger
}

export class RedisFetchLock implements FetchLock {
  readonly #client: RedisClient
  readonly #opts: RedisFetchLockOptions
  readonly #id = randomUUID()
  readonly #log: Logger
  #closed = false

  constructor (opts: RedisFetchLockOptions) {
    this.#opts = opts
    this.#log = (opts.logger ?? silentLogger).child({ module: 'fetch-lock' })
    this.#client = createRedisClient({ url: opts.url, connectTimeout: opts.timeout, logger: this.#log, role: 'fetch lock' })
    this.#client.connect().catch((err: unknown) => {
      this.#log.warn({ err }, 'fetch single-flight across instances is off until Redis answers')
    })
  }

  get ready (): boolean {
    return this.#client.isReady
  }

  /** Resolves once connected (start-up and tests; the request path never waits on it). */
  async whenReady (timeoutMs = 5000): Promise<void> {
    if (this.#client.isReady) return
    await once(this.#client, 'ready', { signal: AbortSignal.timeout(timeoutMs) })
  }

  async run (key: string, signal: AbortSignal, fetch: () => Promise<FetchedResource>): Promise<FetchedResource> {
    if (this.#closed || !this.#client.isReady) return await fetch()
    const id = createHash('sha256').update(key).digest('base64url')
    const lockKey = `${this.#opts.prefix}fetch:lock:${id}`
    const resultKey = `${this.#opts.prefix}fetch:result:${id}`
    const started = Date.now()
    let won: boolean
    try {
      won = String(await this.#call(o => this.#client.sendCommand(['SET', lockKey, this.#id, 'NX', 'PX', String(this.#opts.lockTtl)], o))) === 'OK'
    } catch (err) {
      this.#failed(err)
      return await fetch()
    }
    if (won) {
      try {
        const r = await fetch()
        await this.#call(o => this.#client.sendCommand(['SET', resultKey, encodeEntry(r), 'PX', String(this.#opts.resultTtl ?? 30_000)], o))
          .catch((err: unknown) => this.#failed(err))
        return r
      } finally {
        await this.#call(o => this.#client.sendCommand(['EVAL', releaseScript, '1', lockKey, this.#id], o))
          .catch((err: unknown) => this.#failed(err))
      }
    }
    return await this.#awaitResult(key, lockKey, resultKey, started, signal, fetch)
  }

  /** Another instance holds the lock: take its result, or fetch alone once it is gone without one. */
  async #awaitResult (url: string, lockKey: string, resultKey: string, started: number, signal: AbortSignal, fetch: () => Promise<FetchedResource>): Promise<FetchedResource> {
    const interval = this.#opts.pollInterval ?? 50
    while (true) {
      // Polling Redis, bounded by the job's deadline signal (which rejects the sleep).
      await sleep(interval, undefined, { signal, ref: false })
      let buf: unknown
      let held: unknown
      try {
        [buf, held] = await Promise.all([
          this.#call(o => this.#client.sendCommand(['GET', resultKey], { ...o, typeMapping: bufferReplies() })),
          this.#call(o => this.#client.sendCommand(['EXISTS', lockKey], o)),
        ])
      } catch (err) {
        this.#failed(err)
        return await fetch()
      }
      if (Buffer.isBuffer(buf)) {
        try {
          const r = decodeEntry(buf)
          // A result older than this wait belongs to an earlier job (clocks may differ by a little).
          if (r.fetchedAt >= started - 1000) {
            if (sharedChannel.hasSubscribers) sharedChannel.publish({ url })
            return r
          }
        } catch (err) {
          this.#failed(err)
        }
      }
      if (held === 0) return await fetch()
    }
  }

  #call<T> (send: (o: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> {
    return send({ abortSignal: AbortSignal.timeout(this.#opts.timeout) })
  }

  #failed (err: unknown): void {
    if (errorChannel.hasSubscribers) errorChannel.publish({ error: (err as Error).message })
    this.#log.debug({ err }, 'fetch lock: Redis call failed; fetching alone')
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await closeRedisClient(this.#client, this.#log)
  }

  async destroy (): Promise<void> {
    this.#closed = true
    destroyRedisClient(this.#client, this.#log)
  }
}
