/**
 * The purge bus: with Redis configured, a purge reaches every process of
 * every instance through pub/sub on channel `<prefix>purge`, and is
 * acknowledged (docs/architecture.md, "Coherence").
 *
 * Members: each process announces itself with a heartbeat key
 * `<prefix>member:<id>` (`PX` three heartbeats), so "every live member" is
 * what a SCAN of those keys finds, and a member that died drops out of it
 * by itself. No consensus: a member is live while its key is.
 *
 * A purge: the sender lists the live members, publishes the notice and
 * waits (at most `ackTimeout`) for each member's ack on the same channel;
 * it resolves who acknowledged and who did not. A member applies a notice
 * once (by id; the cluster link may deliver it too) and acks every time it
 * hears it. The receiver marks soft-purged entries stale with its own clock
 * at receipt, never the sender's, so clock skew between hosts does not delay
 * a soft purge.
 *
 * Messages (JSON, at most 1 MiB):
 * `{ "v": 2, "type": "purge", "from": id, "id": purgeId, "sel": PurgeSelector, "soft": bool }`,
 * `{ "v": 2, "type": "ack", "from": id, "to": id, "id": purgeId }`.
 * Anything else on the channel is ignored and counted.
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
import { hostname } from 'node:os'
import { closeRedisClient, createRedisClient, destroyRedisClient, withDeadline, type RedisClient } from '../redis-client.ts'
import { liveryError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { silentLogger } from '../log.ts'
import type { ExactEntry, PeerReport, PurgeApplier, PurgeNotice, PurgePeers } from './peers.ts'
import type { PurgeSelector } from './store.ts'

const receivedChannel = channel('livery:cache:purge_received')
const busErrorChannel = channel('livery:cache:purge_bus_error')

const MAX_MESSAGE = 1024 * 1024
/** Most purges waiting for acks at once; beyond it a purge reports every member missing. */
const MAX_ROUNDS = 1000

export interface PurgeBusOptions {
  /** `cache.redis.url` */
  readonly url: string
  /** `cache.redis.prefix`; the channel is `<prefix>purge`. */
  readonly prefix: string
  /**
   * Unique per process. The default, `host:pid`, is also how the cluster
   * primary names its workers, so a member acknowledged over either transport
   * counts once. @default `${hostname()}:${process.pid}`
   */
  readonly instanceId?: string
  /** Deadline of a publish, in ms. @default 1000 */
  readonly timeout?: number
  /** Longest wait for the members' acks, in ms. @default 2000 */
  readonly ackTimeout?: number
  /** How often the member key is refreshed, in ms; it expires after three. @default 1000 */
  readonly heartbeat?: number
  readonly logger?: Logger
}

/** @deprecated the bus now carries notices with ids; kept for the shape of old callers. */
export type PurgeHandler = PurgeApplier

type Client = RedisClient

interface Round {
  readonly waiting: Set<string>
  readonly acked: string[]
  readonly done: () => void
}

export class PurgeBus implements PurgePeers {
  readonly instanceId: string
  readonly channel: string
  readonly #prefix: string
  readonly #timeout: number
  readonly #ackTimeout: number
  readonly #heartbeat: number
  readonly #log: Logger
  readonly #pub: Client
  readonly #sub: Client
  readonly #rounds = new Map<string, Round>()
  #apply: PurgeApplier | undefined
  #started: Promise<void> | undefined
  #beat: NodeJS.Timeout | undefined
  #errors = 0
  #closed = false

  constructor (opts: PurgeBusOptions) {
    if (typeof opts.url !== 'string' || !/^rediss?:\/\//.test(opts.url)) {
      throw new TypeError(`cache.redis.url must be a redis:// or rediss:// URL, got ${String(opts.url)}`)
    }
    this.instanceId = opts.instanceId ?? `${hostname()}:${process.pid}`
    this.#prefix = opts.prefix
    this.channel = opts.prefix + 'purge'
    this.#timeout = opts.timeout ?? 1000
    this.#ackTimeout = opts.ackTimeout ?? 2000
    this.#heartbeat = opts.heartbeat ?? 1000
    this.#log = opts.logger ?? silentLogger
    this.#pub = createRedisClient({ url: opts.url, logger: this.#log, role: 'purge bus publisher' })
    this.#sub = createRedisClient({ url: opts.url, failFast: false, logger: this.#log, role: 'purge bus subscriber' })
    // A reconnected publisher announces the member again at once.
    this.#pub.on('ready', () => { void this.#announce() })
  }

  onPurge (apply: PurgeApplier): void {
    this.#apply = apply
  }

  /**
   * Connects, subscribes and starts the heartbeat; resolves once remote
   * purges are being received, or rejects after `timeoutMs` while the
   * connection keeps retrying (and subscribes when it succeeds).
   */
  async start (timeoutMs = 5000): Promise<void> {
    this.#check()
    if (this.#started === undefined) {
      this.#started = (async () => {
        await Promise.all([this.#pub.connect(), this.#sub.connect()])
        await this.#sub.subscribe(this.channel, (m: string) => { void this.#receive(m) })
        await this.#announce()
      })()
      this.#started.catch((err: unknown) => { this.#failed('connect', err) })
      this.#beat = setInterval(() => { void this.#announce() }, this.#heartbeat)
      this.#beat.unref()
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

  /** True while the bus can publish. */
  get ready (): boolean {
    return this.#pub.isReady && this.#sub.isReady
  }

  /**
   * Tells the other members and waits (at most `ackTimeout`) for their acks.
   * Never rejects: a Redis that cannot be reached reports `redis` missing.
   */
  async publish (notice: PurgeNotice): Promise<PeerReport> {
    this.#check()
    if (!this.#pub.isReady) {
      this.#failed('publish', liveryError('LIVERY_ERR_CACHE_STORE', 'purge bus', 'not connected'))
      return { acked: [], missing: ['redis (the other instances could not be told)'] }
    }
    let members: string[]
    try {
      members = (await this.members()).filter((m) => m !== this.instanceId)
    } catch (err) {
      this.#failed('members', err)
      return { acked: [], missing: ['redis (the other instances could not be told)'] }
    }
    if (this.#rounds.size >= MAX_ROUNDS) return { acked: [], missing: members }
    let timer: NodeJS.Timeout | undefined
    const round: Round = { waiting: new Set(members), acked: [], done: () => {} }
    const settled = new Promise<void>((resolve) => {
      (round as { done: () => void }).done = resolve
      timer = setTimeout(resolve, this.#ackTimeout)
      timer.unref()
    })
    this.#rounds.set(notice.id, round)
    try {
      const msg = JSON.stringify({ v: 2, type: 'purge', from: this.instanceId, id: notice.id, sel: notice.sel, soft: notice.soft, exact: notice.exact })
      if (!await this.#send(msg)) return { acked: [], missing: ['redis (the other instances could not be told)'] }
      if (round.waiting.size > 0) await settled
      return { acked: [...round.acked], missing: [...round.waiting] }
    } finally {
      clearTimeout(timer)
      this.#rounds.delete(notice.id)
    }
  }

  /** The live members (their heartbeat keys), this one included. */
  async members (): Promise<string[]> {
    const out: string[] = []
    const n = this.#prefix.length + 'member:'.length
    let cursor = '0'
    do {
      const r = await withDeadline(this.#timeout, 'purge bus', (o) => this.#pub.sendCommand(['SCAN', cursor, 'MATCH', globEscape(this.#prefix) + 'member:*', 'COUNT', '1000'], o)) as [string, string[]]
      cursor = String(r[0])
      for (const k of r[1]) out.push(String(k).slice(n))
    } while (cursor !== '0')
    return out
  }

  get errors (): number {
    return this.#errors
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#beat)
    for (const r of this.#rounds.values()) r.done()
    // Leave at once rather than after three missed heartbeats: purges meanwhile would wait for us.
    if (this.#pub.isReady) {
      await withDeadline(this.#timeout, 'purge bus', (o) => this.#pub.sendCommand(['DEL', this.#memberKey()], o)).catch((err: unknown) => {
        this.#log.debug({ err }, 'purge bus: could not remove the member key (it expires by itself)')
      })
    }
    await Promise.all([this.#pub, this.#sub].map(c => closeRedisClient(c, this.#log)))
  }

  async destroy (): Promise<void> {
    this.#closed = true
    clearInterval(this.#beat)
    for (const r of this.#rounds.values()) r.done()
    for (const c of [this.#pub, this.#sub]) destroyRedisClient(c, this.#log)
  }

  #check (): void {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', 'purge bus')
  }

  #memberKey (): string {
    return this.#prefix + 'member:' + this.instanceId
  }

  async #announce (): Promise<void> {
    // Only a subscribed member may announce itself: a member that cannot hear purges must not be waited for.
    if (this.#closed || !this.#pub.isReady || !this.#sub.isReady) return
    try {
      await withDeadline(this.#timeout, 'purge bus', (o) => this.#pub.sendCommand(['SET', this.#memberKey(), String(process.pid), 'PX', String(this.#heartbeat * 3)], o))
    } catch (err) {
      this.#log.debug({ err }, 'purge bus heartbeat failed')
    }
  }

  async #send (msg: string): Promise<boolean> {
    try {
      await withDeadline(this.#timeout, 'purge bus', (o) => this.#pub.sendCommand(['PUBLISH', this.channel, msg], o))
      return true
    } catch (err) {
      this.#failed('publish', err)
      return false
    }
  }

  async #receive (raw: string): Promise<void> {
    if (this.#closed) return
    let msg: Message
    try {
      msg = parseMessage(raw)
    } catch (err) {
      this.#failed('receive', err)
      return
    }
    if (msg.from === this.instanceId) return
    if (msg.type === 'ack') {
      if (msg.to !== this.instanceId) return
      const round = this.#rounds.get(msg.id)
      if (round === undefined || !round.waiting.delete(msg.from)) return
      round.acked.push(msg.from)
      if (round.waiting.size === 0) round.done()
      return
    }
    if (this.#apply === undefined) return
    try {
      const count = await this.#apply({ id: msg.id, sel: msg.sel, soft: msg.soft, ...(msg.exact === undefined ? {} : { exact: msg.exact }) })
      if (receivedChannel.hasSubscribers) receivedChannel.publish({ from: msg.from, to: this.instanceId, selector: msg.sel, soft: msg.soft, count })
    } catch (err) {
      // Not acknowledged: the sender reports this member as missing and the operator retries.
      this.#failed('apply', err)
      return
    }
    if (this.#closed || !this.#pub.isReady) return
    await this.#send(JSON.stringify({ v: 2, type: 'ack', from: this.instanceId, to: msg.from, id: msg.id }))
  }

  #failed (op: string, err: unknown): void {
    this.#errors++
    if (busErrorChannel.hasSubscribers) busErrorChannel.publish({ op, error: err })
    this.#log.warn({ err, op }, 'purge bus failure')
  }
}

type Message =
  | { readonly type: 'purge', readonly from: string, readonly id: string, readonly sel: PurgeSelector, readonly soft: boolean, readonly exact?: ExactEntry }
  | { readonly type: 'ack', readonly from: string, readonly to: string, readonly id: string }

/** Escapes the glob metacharacters of Redis MATCH patterns. */
function globEscape (s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&')
}

function strings (v: unknown, name: string): string[] | undefined {
  if (v === undefined) return undefined
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new TypeError(`${name} must be a list of strings`)
  return v
}

/** Parses a bus message; throws on anything that is not one. */
function parseMessage (raw: string): Message {
  if (raw.length > MAX_MESSAGE) throw new TypeError('purge message too large')
  const m: unknown = JSON.parse(raw)
  if (typeof m !== 'object' || m === null) throw new TypeError('purge message is not an object')
  const o = m as Record<string, unknown>
  if (o.v !== 2 || typeof o.from !== 'string' || typeof o.id !== 'string') throw new TypeError('purge message has a bad envelope')
  if (o.type === 'ack') {
    if (typeof o.to !== 'string') throw new TypeError('ack has no recipient')
    return { type: 'ack', from: o.from, to: o.to, id: o.id }
  }
  if (o.type !== 'purge' || typeof o.soft !== 'boolean') throw new TypeError('purge message has a bad envelope')
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
  return { type: 'purge', from: o.from, id: o.id, sel, soft: o.soft, ...(o.exact === undefined ? {} : { exact: exactEntry(o.exact) }) }
}

function exactEntry (v: unknown): ExactEntry {
  const x = v as Record<string, unknown> | null
  if (typeof x !== 'object' || x === null || typeof x.key !== 'string' || typeof x.url !== 'string' ||
    typeof x.requestTime !== 'number' || typeof x.responseTime !== 'number' || typeof x.length !== 'number') throw new TypeError('exact must name an entry')
  return { key: x.key, url: x.url, requestTime: x.requestTime, responseTime: x.responseTime, length: x.length }
}
