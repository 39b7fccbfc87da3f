/**
 * The Redis tier, shared by every instance. It must never block a request:
 * each call has a deadline (`cache.redis.timeout`, 50 ms by default) that
 * aborts the command; after `breakerFailures` failures in a row the tier is
 * skipped outright for `breakerCoolDown` ms; while the connection is down
 * calls are skipped without waiting, and the client reconnects by itself.
 * So a get resolves a miss and a put resolves false within the deadline.
 *
 * Why @redis/client and not the keyv API: keyv 6 wraps every value in
 * `{ value, expires }` and runs it through a string serializer, and
 * @keyv/redis reads replies as UTF-8 strings, so a Buffer can only cross
 * it as base64 or a mangled latin1 string. DESIGN §4 wants binary entries,
 * so this tier talks to the @redis/client that @keyv/redis is built on,
 * asking for blob-string replies as Buffers (RESP type mapping). It also
 * needs SADD / SCAN / PEXPIRE for the purge index, which keyv does not expose.
 *
 * Layout under `prefix` (`cache.redis.prefix`):
 * - `<prefix>e:<key>`  the encoded entry (entry.ts binary format), `PX` ttl;
 * - `<prefix>u:<url>`, `<prefix>t:<tag>`, `<prefix>s:<site>`  sets of keys,
 *   expiring with the longest-lived member (PEXPIRE NX then GT).
 * Purges by url, tag and site read those sets; purges by prefix SCAN
 * `<prefix>u:<glob-escaped prefix>*`; `all` SCANs `<prefix>e:*`. Set members
 * whose entry already expired just count nothing when deleted.
 *
 * Metrics (node:diagnostics_channel):
 * - `livery:cache:redis_error` `{ op, error }` — a command failed or timed out.
 * - `livery:cache:redis_connect` `{ name }` — the connection is (again) ready.
 * - `livery:cache:corrupt` `{ tier, key, reason }` — a stored entry failed its checksum.
 * `stats()` gives `{ redis: { entries, bytes, maxBytes, evictions } }` from the
 * server's INFO (server-wide: DBSIZE, used_memory, maxmemory, evicted_keys),
 * refreshed in the background at most every 5 s; `redisStats()` gives the
 * counters of this instance.
 */
import { channel } from 'node:diagnostics_channel'
import { once } from 'node:events'
import { bufferReplies, closeRedisClient, createRedisClient, destroyRedisClient, type RedisClient } from '../redis-client.ts'
import { liveryError, wrapError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { silentLogger } from '../log.ts'
import { type CacheEntry, decodeEntry, encodeEntry, softPurged } from './entry.ts'
import { type CacheStore, type PurgeOptions, type PurgeSelector, type TierStats } from './store.ts'
import { storageDeadline } from './tiered-store.ts'

const errorChannel = channel('livery:cache:redis_error')
const connectChannel = channel('livery:cache:redis_connect')
const corruptChannel = channel('livery:cache:corrupt')

export interface RedisStoreOptions {
  /** `redis://host:port/db` (`cache.redis.url`). */
  readonly url: string
  /** Prepended to every key and channel (`cache.redis.prefix`). */
  readonly prefix: string
  /** Deadline of each request-path call, in ms (`cache.redis.timeout`). @default 50 */
  readonly timeout?: number
  /** Deadline of each command of purge / keys / clear, in ms. @default 2000 */
  readonly adminTimeout?: number
  /** Largest encoded entry stored, in bytes. @default 8 MiB */
  readonly maxEntrySize?: number
  /** Failures in a row that make the tier skip itself. @default 3 */
  readonly breakerFailures?: number
  /** How long the tier skips itself after that, in ms. @default 1000 */
  readonly breakerCoolDown?: number
  /** Most commands waiting on the connection before new ones are refused. @default 1000 */
  readonly maxQueue?: number
  /** Tier name in metrics. @default 'redis' */
  readonly name?: string
  readonly logger?: Logger
}

export interface RedisStats {
  readonly connected: boolean
  readonly errors: number
  readonly timeouts: number
  /** Calls answered without asking Redis (down or breaker open). */
  readonly skipped: number
  readonly corrupt: number
}

type Client = RedisClient

const kSkip = Symbol('skip')

export class RedisStore implements CacheStore {
  readonly name: string
  readonly syncComplete = false
  readonly #prefix: string
  readonly #timeout: number
  readonly #adminTimeout: number
  readonly #maxEntrySize: number
  readonly #breakerFailures: number
  readonly #breakerCoolDown: number
  readonly #log: Logger
  readonly #client: Client
  #failures = 0
  #openUntil = 0
  #errors = 0
  #timeouts = 0
  #skipped = 0
  #corrupt = 0
  #closed = false
  #info: TierStats = { entries: 0, bytes: 0, maxBytes: 0, evictions: 0 }
  #infoAt = 0

  constructor (opts: RedisStoreOptions) {
    if (typeof opts.url !== 'string' || !/^rediss?:\/\//.test(opts.url)) {
      throw new TypeError(`cache.redis.url must be a redis:// or rediss:// URL, got ${String(opts.url)}`)
    }
    const timeout = opts.timeout ?? 50
    if (!(timeout > 0)) throw new TypeError(`cache.redis.timeout must be a positive number of ms, got ${String(opts.timeout)}`)
    this.name = opts.name ?? 'redis'
    this.#prefix = opts.prefix
    this.#timeout = timeout
    this.#adminTimeout = opts.adminTimeout ?? 2000
    this.#maxEntrySize = opts.maxEntrySize ?? 8 * 1024 * 1024
    this.#breakerFailures = opts.breakerFailures ?? 3
    this.#breakerCoolDown = opts.breakerCoolDown ?? 1000
    this.#log = opts.logger ?? silentLogger
    this.#client = createRedisClient({ url: opts.url, connectTimeout: timeout, maxQueue: opts.maxQueue ?? 1000, logger: this.#log, role: 'cache tier' })
    this.#client.on('ready', () => {
      this.#failures = 0
      this.#openUntil = 0
      if (connectChannel.hasSubscribers) connectChannel.publish({ name: this.name })
    })
    this.#client.connect().catch((err: unknown) => {
      this.#log.warn({ err }, 'redis cache tier could not connect; it keeps retrying')
    })
  }

  /** True while the connection is up. */
  get ready (): boolean {
    return this.#client.isReady
  }

  /**
   * True while request-path calls are sent and the last one succeeded: the
   * miss lock asks Redis only then, so a miss whose read of Redis just timed
   * out does not wait on Redis a second time.
   */
  get available (): boolean {
    return this.#client.isReady && this.#openUntil <= Date.now() && this.#failures === 0
  }

  /**
   * Resolves once the connection is ready (at once if it is), or rejects
   * after `timeoutMs`. The request path never waits on this; startup and
   * tests may.
   */
  async whenReady (timeoutMs = 5000): Promise<void> {
    this.#check()
    if (this.#client.isReady) return
    const ac = new AbortController()
    const timer = setTimeout(() => ac.abort(), timeoutMs)
    timer.unref()
    try {
      await once(this.#client, 'ready', { signal: ac.signal })
    } catch (err) {
      throw wrapError('LIVERY_ERR_CACHE_TIMEOUT', err, this.name, `${timeoutMs} ms (connecting)`)
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * `opts.timeout` replaces the request-path deadline and sends the read even
   * while the breaker is open: the miss lock's waiters, for whom one read of
   * Redis saves an upstream fetch (a burst of short reads timing out must not
   * make them fetch too).
   */
  async get (key: string, opts?: { readonly timeout?: number }): Promise<CacheEntry | undefined> {
    this.#check()
    const ek = this.#entryKey(key)
    // GET and PTTL go out in one tick, so @redis/client pipelines them.
    const reply = await this.#call('get', opts?.timeout ?? this.#timeout, (o) => Promise.all([
      this.#client.sendCommand(['GET', ek], { ...o, typeMapping: bufferReplies() }),
      this.#client.sendCommand(['PTTL', ek], o)
    ]), opts?.timeout !== undefined)
    if (!Array.isArray(reply) || !Buffer.isBuffer(reply[0])) return undefined
    try {
      const entry = decodeEntry(reply[0], key, this.name)
      if (typeof reply[1] === 'number' && reply[1] > 0) storageDeadline.set(entry, Date.now() + reply[1])
      return entry
    } catch (err) {
      this.#corrupt++
      if (corruptChannel.hasSubscribers) corruptChannel.publish({ tier: this.name, key, reason: err instanceof Error ? err.message : String(err) })
      void this.#call('del', this.#timeout, (o) => this.#client.sendCommand(['DEL', this.#entryKey(key)], o))
      return undefined
    }
  }

  /** `opts.timeout` as for get: the miss lock's winner sending a write-through that timed out again. */
  async put (key: string, entry: CacheEntry, ttlMs: number, opts?: { readonly timeout?: number }): Promise<boolean> {
    this.#check()
    if (!(ttlMs > 0)) return false
    const buf = encodeEntry(entry)
    if (buf.length > this.#maxEntrySize) return false
    const reply = await this.#call('put', opts?.timeout ?? this.#timeout, (o) => this.#write(key, entry, buf, Math.ceil(ttlMs), o), opts?.timeout !== undefined)
    return reply === true
  }

  /**
   * Whether Redis holds now the very entry `entry` (the same fill: its
   * request and response times and body length) under `key`; undefined when
   * Redis did not answer. Sent after this connection's earlier writes, so it
   * sees them. The purge path asks it of a write-back that may have landed
   * after another member's purge (TieredStore.purgeLocal).
   */
  async holds (key: string, entry: CacheEntry): Promise<boolean | undefined> {
    this.#check()
    const r = await this.#call('get', this.#adminTimeout, (o) => this.#client.sendCommand(['GET', this.#entryKey(key)], { ...o, typeMapping: bufferReplies() }), true)
    if (r === kSkip) return undefined
    if (!Buffer.isBuffer(r)) return false
    try {
      const e = decodeEntry(r, key, this.name)
      return e.meta.requestTime === entry.meta.requestTime && e.meta.responseTime === entry.meta.responseTime && e.body.length === entry.body.length
    } catch {
      return undefined
    }
  }

  /** Deletes `key` if Redis holds that very entry (holds); resolves whether it did. */
  async deleteIf (key: string, entry: CacheEntry): Promise<boolean> {
    if (await this.holds(key, entry) === false) return false
    const r = await this.#admin('del', (o) => this.#client.sendCommand(['DEL', this.#entryKey(key)], o))
    return r === 1
  }

  async delete (key: string): Promise<boolean> {
    this.#check()
    const reply = await this.#call('delete', this.#timeout, (o) => this.#client.sendCommand(['DEL', this.#entryKey(key)], o))
    return reply === 1
  }

  async * keys (): AsyncIterable<string> {
    this.#check()
    const n = this.#prefix.length + 2
    for await (const batch of this.#scan(this.#prefix + 'e:*')) for (const k of batch) yield k.slice(n)
  }

  /** Unlike get/put, a purge that cannot reach Redis throws: the operator must know. */
  async purge (sel: PurgeSelector, opts: PurgeOptions = {}): Promise<number> {
    this.#check()
    const now = opts.now ?? Date.now()
    const keys = new Set<string>()
    const indexes: string[] = []
    if (sel.all === true) {
      for await (const batch of this.#scan(this.#prefix + 'e:*')) for (const k of batch) keys.add(k)
    } else {
      for (const u of sel.urls ?? []) indexes.push(this.#prefix + 'u:' + u)
      for (const t of sel.tags ?? []) indexes.push(this.#prefix + 't:' + t)
      if (sel.site !== undefined && sel.site !== '') indexes.push(this.#prefix + 's:' + sel.site)
      for (const p of sel.prefixes ?? []) {
        for await (const batch of this.#scan(this.#prefix + 'u:' + globEscape(p) + '*')) indexes.push(...batch)
      }
      if (opts.soft === true) {
        for (const idx of indexes) {
          const members = await this.#admin('smembers', (o) => this.#client.sendCommand(['SMEMBERS', idx], o))
          if (!Array.isArray(members)) continue
          for (const m of members) keys.add(this.#entryKey(String(m)))
        }
      }
    }
    let count = 0
    const list = [...keys]
    if (opts.soft === true) {
      for (const k of list) if (await this.#softPurge(k, now)) count++
    } else if (sel.all === true) {
      for (let i = 0; i < list.length; i += 500) {
        const n = await this.#admin('unlink', (o) => this.#client.sendCommand(['UNLINK', ...list.slice(i, i + 500)], o))
        count += typeof n === 'number' ? n : 0
      }
    } else {
      // Each index set is read, its entries unlinked and those members
      // removed in one script, atomically: done in three round trips, a
      // write-back of the same key landing between the UNLINK and the SREM
      // kept its entry and lost its index member, so no later purge found it
      // (bench/coherence served such a copy after every later purge).
      for (const idx of indexes) {
        const n = await this.#admin('purge', (o) => this.#client.sendCommand(['EVAL', purgeIndexScript, '1', idx, this.#prefix + 'e:'], o))
        count += typeof n === 'number' ? n : 0
      }
    }
    return count
  }

  async clear (): Promise<void> {
    this.#check()
    for await (const batch of this.#scan(globEscape(this.#prefix) + '*')) {
      if (batch.length > 0) await this.#admin('unlink', (o) => this.#client.sendCommand(['UNLINK', ...batch], o))
    }
  }

  stats (): Readonly<Record<string, TierStats>> {
    if (!this.#closed && this.#client.isReady && Date.now() - this.#infoAt > 5000) {
      this.#infoAt = Date.now()
      void this.#refreshInfo()
    }
    return { [this.name]: this.#info }
  }

  redisStats (): RedisStats {
    return { connected: this.#client.isReady, errors: this.#errors, timeouts: this.#timeouts, skipped: this.#skipped, corrupt: this.#corrupt }
  }

  /** Publishes on a channel under the prefix (used by the purge bus). Resolves false on failure. */
  async publish (name: string, message: string): Promise<boolean> {
    this.#check()
    const r = await this.#call('publish', this.#timeout, (o) => this.#client.sendCommand(['PUBLISH', this.#prefix + name, message], o))
    return typeof r === 'number'
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

  // --- internals -----------------------------------------------------------

  #check (): void {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', `cache tier ${this.name}`)
  }

  #entryKey (key: string): string {
    return this.#prefix + 'e:' + key
  }

  /** SET plus the index sets, sent in one tick so @redis/client pipelines them. */
  async #write (key: string, entry: CacheEntry, buf: Buffer, ttl: number, o: { abortSignal: AbortSignal }): Promise<boolean> {
    const c = this.#client
    const ek = key
    const ttlArg = String(ttl)
    const ops: Array<Promise<unknown>> = [c.sendCommand(['SET', this.#entryKey(key), buf, 'PX', ttlArg], o)]
    const m = entry.meta
    const sets = [this.#prefix + 'u:' + m.url, this.#prefix + 's:' + m.site]
    for (const t of m.tags) sets.push(this.#prefix + 't:' + t)
    for (const s of sets) {
      ops.push(c.sendCommand(['SADD', s, ek], o))
      ops.push(c.sendCommand(['PEXPIRE', s, ttlArg, 'NX'], o))
      ops.push(c.sendCommand(['PEXPIRE', s, ttlArg, 'GT'], o))
    }
    const replies = await Promise.all(ops)
    return replies[0] === 'OK'
  }

  async #softPurge (entryKey: string, now: number): Promise<boolean> {
    const [buf, pttl] = await Promise.all([
      this.#admin('get', (o) => this.#client.sendCommand(['GET', entryKey], { ...o, typeMapping: bufferReplies() })),
      this.#admin('pttl', (o) => this.#client.sendCommand(['PTTL', entryKey], o))
    ])
    if (!Buffer.isBuffer(buf) || typeof pttl !== 'number' || pttl <= 0) return false
    let entry: CacheEntry
    try {
      entry = decodeEntry(buf, entryKey, this.name)
    } catch {
      this.#corrupt++
      await this.#admin('del', (o) => this.#client.sendCommand(['DEL', entryKey], o))
      return false
    }
    const out = encodeEntry(softPurged(entry, now))
    const r = await this.#admin('set', (o) => this.#client.sendCommand(['SET', entryKey, out, 'PX', String(pttl), 'XX'], o))
    return r === 'OK'
  }

  async * #scan (match: string): AsyncGenerator<string[]> {
    let cursor = '0'
    do {
      const r = await this.#admin('scan', (o) => this.#client.sendCommand(['SCAN', cursor, 'MATCH', match, 'COUNT', '1000'], o))
      if (!Array.isArray(r) || r.length !== 2 || !Array.isArray(r[1])) throw liveryError('LIVERY_ERR_CACHE_STORE', this.name, 'unexpected SCAN reply')
      cursor = String(r[0])
      yield r[1].map(String)
    } while (cursor !== '0')
  }

  async #refreshInfo (): Promise<void> {
    const [info, size] = await Promise.all([
      this.#call('info', this.#adminTimeout, (o) => this.#client.sendCommand(['INFO'], o)),
      this.#call('dbsize', this.#adminTimeout, (o) => this.#client.sendCommand(['DBSIZE'], o))
    ])
    if (typeof info !== 'string') return
    const field = (name: string): number => {
      const m = new RegExp(`^${name}:(\\d+)`, 'm').exec(info)
      return m === null ? 0 : Number(m[1])
    }
    this.#info = { entries: typeof size === 'number' ? size : 0, bytes: field('used_memory'), maxBytes: field('maxmemory'), evictions: field('evicted_keys') }
  }

  /** An admin-path command: longer deadline, and failure throws. */
  async #admin (op: string, fn: (o: { abortSignal: AbortSignal }) => Promise<unknown>): Promise<unknown> {
    if (!this.#client.isReady) throw liveryError('LIVERY_ERR_CACHE_STORE', this.name, 'not connected')
    const r = await this.#call(op, this.#adminTimeout, fn, true)
    if (r === kSkip) throw liveryError('LIVERY_ERR_CACHE_STORE', this.name, `${op} failed`)
    return r
  }

  /**
   * Runs one guarded call: skipped while down or while the breaker is open;
   * otherwise aborted at `timeout` ms. Never throws; failures resolve kSkip.
   */
  async #call (op: string, timeout: number, fn: (o: { abortSignal: AbortSignal }) => Promise<unknown>, force = false): Promise<unknown> {
    if (!this.#client.isReady || (!force && this.#openUntil > Date.now())) {
      this.#skipped++
      return kSkip
    }
    const ac = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<typeof kSkip>((resolve) => {
      timer = setTimeout(() => {
        ac.abort(liveryError('LIVERY_ERR_CACHE_TIMEOUT', this.name, `${timeout} ms`))
        resolve(kSkip)
      }, timeout)
      timer.unref()
    })
    // The command's own rejection is turned into a value here, so a command
    // aborted after the deadline already won the race is not an unhandled
    // rejection; the timeout was counted when the deadline fired.
    let error: unknown
    const work: Promise<unknown> = fn({ abortSignal: ac.signal }).then((v) => v, (err: unknown) => { error = err; return kSkip })
    try {
      const r = await Promise.race([work, deadline])
      if (r !== kSkip) {
        this.#failures = 0
      } else if (ac.signal.aborted) {
        this.#timeouts++
        this.#failed(op, ac.signal.reason)
      } else {
        this.#failed(op, error)
      }
      return r
    } finally {
      clearTimeout(timer)
    }
  }

  #failed (op: string, err: unknown): void {
    this.#errors++
    if (++this.#failures >= this.#breakerFailures) this.#openUntil = Date.now() + this.#breakerCoolDown
    if (errorChannel.hasSubscribers) errorChannel.publish({ op, error: err })
  }
}

/**
 * KEYS[1] an index set, ARGV[1] the entry-key prefix: unlinks the entries
 * the set names and removes those members, in batches of 500 (Lua's unpack
 * limit); resolves the entries unlinked. An entry in two sets (url and tag)
 * counts once: the second UNLINK finds it gone.
 */
const purgeIndexScript = `local m = redis.call('SMEMBERS', KEYS[1])
local n = 0
for i = 1, #m, 500 do
  local j = math.min(i + 499, #m)
  local ks = {}
  for k = i, j do ks[#ks + 1] = ARGV[1] .. m[k] end
  n = n + redis.call('UNLINK', unpack(ks))
  redis.call('SREM', KEYS[1], unpack(m, i, j))
end
return n`

/** Escapes the glob metacharacters of Redis MATCH patterns. */
function globEscape (s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&')
}
