/**
 * The purge bus: with Redis configured, a purge on one instance reaches
 * every instance through pub/sub on channel `<prefix>purge`. Each message
 * carries the sender's instance id, so the sender ignores its own echo (it
 * already purged all its tiers), and the purge clock, so a soft purge marks
 * entries stale as of the same moment everywhere.
 *
 * Message (JSON, at most 1 MiB): `{ "v": 1, "from": id, "sel": PurgeSelector,
 * "soft": bool, "now": ms }`. Anything else on the channel is ignored and
 * counted.
 *
 * Pub/sub needs a connection of its own (a subscribed connection can send
 * nothing else), so the bus holds two: one publishing, one subscribed;
 * @redis/client resubscribes by itself after a reconnect.
 *
 * Metrics (node:diagnostics_channel):
 * - `livery:cache:purge_received` `{ from, to, selector, soft, count }` — a remote
 *   purge was applied to the local tiers.
 * - `livery:cache:purge_bus_error` `{ op, error }` — publishing failed, a
 *   message was malformed, or applying a remote purge failed.
 */
import { channel } from 'node:diagnostics_channel'
import { randomUUID } from 'node:crypto'
import { closeRedisClient, createRedisClient, destroyRedisClient, type RedisClient } from '../redis-client.ts'
import { liveryError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { silentLogger } from '../log.ts'
import type { PurgeOptions, PurgeSelector } from './store.ts'

const receivedChannel = channel('livery:cache:purge_received')
const busErrorChannel = channel('livery:cache:purge_bus_error')

const MAX_MESSAGE = 1024 * 1024

export interface PurgeBusOptions {
  /** `cache.redis.url` */
  readonly url: string
  /** `cache.redis.prefix`; the channel is `<prefix>purge`. */
  readonly prefix: string
  /** Unique per instance. @default a random UUID */
  readonly instanceId?: string
  /** Deadline of a publish, in ms. @default 1000 */
  readonly timeout?: number
  readonly logger?: Logger
}

export type PurgeHandler = (sel: PurgeSelector, opts: PurgeOptions) => Promise<number>

type Client = RedisClient

export class PurgeBus {
  readonly instanceId: string
  readonly channel: string
  readonly #timeout: number
  readonly #log: Logger
  readonly #pub: Client
  readonly #sub: Client
  #handler: PurgeHandler | undefined
  #started: Promise<void> | undefined
  #errors = 0
  #closed = false

  constructor (opts: PurgeBusOptions) {
    if (typeof opts.url !== 'string' || !/^rediss?:\/\//.test(opts.url)) {
      throw new TypeError(`cache.redis.url must be a redis:// or rediss:// URL, got ${String(opts.url)}`)
    }
    this.instanceId = opts.instanceId ?? randomUUID()
    this.channel = opts.prefix + 'purge'
    this.#timeout = opts.timeout ?? 1000
    this.#log = opts.logger ?? silentLogger
    this.#pub = createRedisClient({ url: opts.url, logger: this.#log, role: 'purge bus publisher' })
    this.#sub = createRedisClient({ url: opts.url, failFast: false, logger: this.#log, role: 'purge bus subscriber' })
  }

  /** Sets the function that applies a remote purge to this instance's local tiers. */
  onPurge (handler: PurgeHandler): void {
    this.#handler = handler
  }

  /**
   * Connects and subscribes; resolves once remote purges are being received,
   * or rejects after `timeoutMs` while the connection keeps retrying (and
   * subscribes when it succeeds).
   */
  async start (timeoutMs = 5000): Promise<void> {
    this.#check()
    if (this.#started === undefined) {
      this.#started = (async () => {
        await Promise.all([this.#pub.connect(), this.#sub.connect()])
        await this.#sub.subscribe(this.channel, (m: string) => { void this.#receive(m) })
      })()
      this.#started.catch((err: unknown) => { this.#failed('connect', err) })
    }
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => reject(liveryError('LIVERY_ERR_CACHE_TIMEOUT', 'purge bus', `${timeoutMs} ms (connecting to Redis)`)), timeoutMs)
      timer.unref()
    })
    try {
      await Promise.race([this.#started, deadline])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Tells the other instances. Resolves false (counted) when Redis cannot be reached in time. */
  async publish (sel: PurgeSelector, opts: PurgeOptions): Promise<boolean> {
    this.#check()
    const msg = JSON.stringify({ v: 1, from: this.instanceId, sel, soft: opts.soft === true, now: opts.now ?? Date.now() })
    if (!this.#pub.isReady) {
      this.#failed('publish', liveryError('LIVERY_ERR_CACHE_STORE', 'purge bus', 'not connected'))
      return false
    }
    const ac = new AbortController()
    const timer = setTimeout(() => ac.abort(liveryError('LIVERY_ERR_CACHE_TIMEOUT', 'purge bus', `${this.#timeout} ms`)), this.#timeout)
    timer.unref()
    try {
      await this.#pub.sendCommand(['PUBLISH', this.channel, msg], { abortSignal: ac.signal })
      return true
    } catch (err) {
      this.#failed('publish', ac.signal.aborted ? ac.signal.reason : err)
      return false
    } finally {
      clearTimeout(timer)
    }
  }

  get errors (): number {
    return this.#errors
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.all([this.#pub, this.#sub].map(c => closeRedisClient(c, this.#log)))
  }

  async destroy (): Promise<void> {
    this.#closed = true
    for (const c of [this.#pub, this.#sub]) destroyRedisClient(c, this.#log)
  }

  #check (): void {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', 'purge bus')
  }

  async #receive (raw: string): Promise<void> {
    if (this.#closed) return
    let msg: { from: string, sel: PurgeSelector, soft: boolean, now: number }
    try {
      msg = parseMessage(raw)
    } catch (err) {
      this.#failed('receive', err)
      return
    }
    if (msg.from === this.instanceId || this.#handler === undefined) return
    try {
      const count = await this.#handler(msg.sel, { soft: msg.soft, now: msg.now })
      if (receivedChannel.hasSubscribers) receivedChannel.publish({ from: msg.from, to: this.instanceId, selector: msg.sel, soft: msg.soft, count })
    } catch (err) {
      this.#failed('apply', err)
    }
  }

  #failed (op: string, err: unknown): void {
    this.#errors++
    if (busErrorChannel.hasSubscribers) busErrorChannel.publish({ op, error: err })
    this.#log.warn({ err, op }, 'purge bus failure')
  }
}

function strings (v: unknown, name: string): string[] | undefined {
  if (v === undefined) return undefined
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new TypeError(`${name} must be a list of strings`)
  return v
}

/** Parses a bus message; throws on anything that is not one. */
function parseMessage (raw: string): { from: string, sel: PurgeSelector, soft: boolean, now: number } {
  if (raw.length > MAX_MESSAGE) throw new TypeError('purge message too large')
  const m: unknown = JSON.parse(raw)
  if (typeof m !== 'object' || m === null) throw new TypeError('purge message is not an object')
  const o = m as Record<string, unknown>
  if (o.v !== 1 || typeof o.from !== 'string' || typeof o.now !== 'number' || typeof o.soft !== 'boolean') throw new TypeError('purge message has a bad envelope')
  if (typeof o.sel !== 'object' || o.sel === null) throw new TypeError('purge message has no selector')
  const s = o.sel as Record<string, unknown>
  if (s.site !== undefined && typeof s.site !== 'string') throw new TypeError('site must be a string')
  if (s.all !== undefined && typeof s.all !== 'boolean') throw new TypeError('all must be a boolean')
  const sel: PurgeSelector = {
    urls: strings(s.urls, 'urls'),
    prefixes: strings(s.prefixes, 'prefixes'),
    tags: strings(s.tags, 'tags'),
    site: s.site as string | undefined,
    all: s.all as boolean | undefined
  }
  return { from: o.from, sel, soft: o.soft, now: o.now }
}
