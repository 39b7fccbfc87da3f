/**
 * The gateway process: the HTTP listener, admin routes, site routing,
 * WebSocket upgrades and graceful shutdown. It wires the stages together;
 * the stages themselves live in their own modules.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { createProxyServer } from 'http-proxy-3'
import type { Config } from '../config/types.ts'
import { isLiveryError, liveryError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { createMetrics, type Metrics } from '../metrics/metrics.ts'
import { instrument } from '../metrics/instrument.ts'
import { AdminRoutes } from './admin.ts'
import { countBodyBytes, createFinisher, type Finisher } from './access-log.ts'
import { newContext, sendError, type RequestContext } from './context.ts'
import { serveFreshHit } from './fresh-hit.ts'
import { parseTarget } from './request-target.ts'
import { requestHost } from './request-host.ts'
import { SiteLayer } from './site-layer.ts'
import type { WarmOutcome } from './site-handler.ts'
import { WorkerTier } from '../worker/tier.ts'
import { HotPages } from '../worker/hot-pages.ts'
import { instrumentWorker } from '../metrics/instrument-worker.ts'
import { runThemeCheck } from './check.ts'
import type { PurgeSelector } from '../cache/store.ts'
import type { SiteConfig } from '../config/types.ts'
import { TrustedProxies, isForwardingHeader } from '../proxy/forwarded.ts'
import type { PageThemer } from './themer.ts'
import { HttpCache, MemoryStore, type CacheStore } from '../cache/index.ts'
import { createCacheStore } from '../cache/create-store.ts'
import type { MissLock } from '../cache/miss-lock.ts'
import type { GatewayLock, PurgePeers } from '../cache/peers.ts'
import { TieredStore } from '../cache/tiered-store.ts'
import type { RedisHealthView } from '../cache/redis-health.ts'
import { createPurgeRoute, type PurgeRoute } from '../cache/purge-api.ts'
import { RequestPool, TransformPool, Watchdog, resolveThreads } from '../pool/index.ts'
import { FetchPool } from '../fetcher/index.ts'
import { RedisFetchLock } from '../fetcher/redis-lock.ts'
import { type SiteThemer, transformTaskModule } from './site-themer.ts'
import { createThemeAssetsRoute, themeAssetLimits, type ThemeAssetPools } from './theme-assets.ts'
import { startBufferReclaimer } from './buffer-reclaimer.ts'
import { checkCacheDirectory } from './preflight.ts'
import { listenOn, stopAccepting } from './listening.ts'
import { clientErrorReply, connectRefusal, upgradeRefusal } from './raw-replies.ts'
import { restartOnlyKeys, type ReloadResult } from './reload-result.ts'
import { methodPurgeSelector } from './purge-method.ts'
import { addServerTiming, takeTimingToken, tokenDigest } from './server-timing.ts'
import { addOperatorRoutes, RecentErrors, SiteTraffic, type OperatorView } from './operator-page.ts'
import { timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'

const liveryVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
import { join } from 'node:path'
import { availableParallelism } from 'node:os'

export interface GatewayOptions {
  readonly logger: Logger
  /** Access log destination; defaults to `logger`. */
  readonly accessLogger?: Logger
  /** Where combined-format access lines go (log.format: combined). @default process.stdout */
  readonly accessOut?: NodeJS.WritableStream
  readonly metrics?: Metrics
  /**
   * Serve fresh memory-tier hits on the synchronous fast path (fresh-hit.ts).
   * @default true; false sends every request through the general path (tests compare the two).
   */
  readonly freshHits?: boolean
  /** The cache's clock, for freshness and Age (tests inject one). @default coarseNow */
  readonly now?: () => number
  /** Cluster mode: the metrics route serves the sum over all processes. */
  readonly metricsSource?: () => Promise<string>
  /** The cache's store; defaults to a memory tier sized by cache.memory (Gateway.create builds every configured tier). */
  readonly store?: CacheStore
  /** Whether Redis answers, when it is configured: shown in status and metrics, never in readiness. */
  readonly redisHealth?: RedisHealthView
  /** Themers by site name; by default built from each site's `theme` over the gateway's fetch pool. */
  readonly themes?: ReadonlyMap<string, PageThemer>
  /**
   * 'gateway' (default): enqueue background jobs, and run them in-process when
   * there is no Redis. 'worker': `livery worker`, which runs them from Redis.
   */
  readonly workerRole?: 'gateway' | 'worker'
  /** In a cluster worker: the link to the primary (purges reach the siblings; one fetch per gateway). */
  readonly cluster?: PurgePeers & GatewayLock
  /** The waiting list above this process (built by Gateway.create). */
  readonly missLock?: MissLock
}

/** Where `#track` keeps a response's context for the one shared close listener. */
const kTracked = Symbol('livery.context')
type Tracked = ServerResponse & { [kTracked]?: RequestContext }

/** Node's own limit is what answers 431; 16 KB as the issue and nginx's large_client_header_buffers. */
const maxHeaderSize = 16 * 1024

export class Gateway {
  #config: Config
  readonly server: Server
  readonly admin: AdminRoutes
  readonly metrics: Metrics
  readonly #logger: Logger
  /** What a reload replaces: pool, site handlers, themers, router (see site-layer.ts). */
  #sites: SiteLayer
  readonly #themes: ReadonlyMap<string, PageThemer> | undefined
  /** The current layer's themers; one Map instance, so the theme-assets route and readiness see reloads. */
  readonly #themers = new Map<string, SiteThemer>()
  #reloading: Promise<ReloadResult> | undefined
  #finish: Finisher
  readonly #accessLogger: Logger
  readonly #accessOut: NodeJS.WritableStream | undefined
  readonly #wsProxy: ReturnType<typeof createProxyServer>
  readonly cache: HttpCache
  readonly watchdog: Watchdog
  readonly fetchPool: FetchPool
  /** Theme assets, apart from theme pages and rules so that asset traffic can never evict those (theme-assets.ts). */
  readonly assetPools: ThemeAssetPools
  /** The transform threads; only when some site is themed. */
  readonly transformPool: TransformPool | undefined
  #ready: Promise<void> | undefined
  readonly #uninstrument: () => void
  readonly #reclaimer = startBufferReclaimer()
  readonly #fetchLock: RedisFetchLock | undefined
  #purge: PurgeRoute
  readonly #store: CacheStore
  readonly #redisHealth: RedisHealthView | undefined
  readonly #traffic = new SiteTraffic()
  readonly #recentErrors = new RecentErrors()
  /** SHA-256 of admin.token, for X-Livery-Token; undefined without a token. */
  #timingToken: Buffer | undefined
  /** Layers replaced by a reload, still finishing the requests they admitted. */
  readonly #retiring = new Set<SiteLayer>()
  /** The worker tier's queues: background jobs (DESIGN §7). */
  readonly worker: WorkerTier
  /** Hits per page of sites with warm.afterPurge, by site name; kept across reloads. */
  readonly #hot = new Map<string, HotPages>()
  readonly #uninstrumentWorker: () => void
  #trusted: TrustedProxies
  #draining = false
  readonly #freshHits: boolean
  /** Hits answered on the fast path so far (status: cache.freshHits). */
  #freshHitCount = 0
  #closing: Promise<void> | undefined
  #destroyed = false
  #connections = 0
  /** Responses not yet closed; during a drain they are told to close their connection. */
  readonly #active = new Set<ServerResponse>()
  #adminServer: Server | undefined

  constructor (config: Config, opts: GatewayOptions) {
    this.#config = config
    this.#logger = opts.logger
    this.#trusted = new TrustedProxies(config.trustedProxies)
    this.metrics = opts.metrics ?? createMetrics()
    this.admin = new AdminRoutes({
      prefix: config.admin.prefix,
      metricsEnabled: config.metrics.enabled,
      metrics: this.metrics,
      metricsSource: opts.metricsSource,
    })
    this.admin.addReadinessCheck(() => this.#draining ? 'shutting down' : undefined)
    this.watchdog = new Watchdog({ maxEventLoopDelay: config.pool.maxEventLoopDelay, maxHeap: config.pool.maxHeap, logger: opts.logger })
    this.admin.addReadinessCheck(() => this.watchdog.overloaded())
    const store = opts.store ?? new MemoryStore({ maxSize: config.cache.memory.maxSize, maxEntrySize: config.cache.memory.maxEntrySize })
    this.cache = new HttpCache(config.cache, { store, logger: opts.logger, missLock: opts.missLock, now: opts.now })
    this.#freshHits = opts.freshHits !== false
    this.#store = store
    // Not a readiness check (issue 12, item 7): with Redis down this instance
    // still serves from its own tiers, and one Redis outage must not empty every Service.
    this.#redisHealth = opts.redisHealth
    this.#purge = this.#purgeRoute(config)
    this.#timingToken = config.admin.token === '' ? undefined : tokenDigest(config.admin.token)
    this.admin.add('/purge', this.#purge)
    // With Redis, one fetch job per URL runs in the whole deployment (DESIGN §3).
    this.#fetchLock = config.cache.redis === undefined
      ? undefined
      : new RedisFetchLock({ url: config.cache.redis.url, prefix: config.cache.redis.prefix, timeout: config.cache.redis.timeout, lockTtl: config.fetch.timeouts.total, logger: opts.logger })
    this.fetchPool = new FetchPool(config.fetch, { directory: join(config.cache.directory, 'fetch'), logger: opts.logger, lock: this.#fetchLock })
    const assetPool = (name: string, limits: { entries: number, bytes: number }): FetchPool => new FetchPool(config.fetch, {
      directory: join(config.cache.directory, name), logger: opts.logger, lock: this.#fetchLock, maxEntries: limits.entries, maxBytes: Math.max(limits.bytes, config.fetch.maxSize),
    })
    this.assetPools = { theme: assetPool('fetch-assets', themeAssetLimits.theme), other: assetPool('fetch-assets-other', themeAssetLimits.other) }
    const themed = config.sites.filter(site => site.theme !== undefined && opts.themes?.get(site.name) === undefined)
    this.transformPool = themed.length === 0
      ? undefined
      : new TransformPool({ threads: threadsPerProcess(config), filename: transformTaskModule, logger: opts.logger })
    this.#themes = opts.themes
    this.#sites = this.#buildSites(config)
    this.#useSites(this.#sites)
    const themers = this.#themers
    this.admin.addPrefix('/theme/', createThemeAssetsRoute(themers, this.assetPools))
    addOperatorRoutes(this.admin, {
      prefix: config.admin.prefix,
      view: () => this.#operatorView(),
      tokenConfigured: () => this.#timingToken !== undefined,
      tokenMatches: token => this.#timingToken !== undefined && timingSafeEqual(tokenDigest(token), this.#timingToken),
      purge: async (sel, soft) => {
        const purged = await this.cache.purge(sel, { soft })
        this.#warmAfterPurge(sel, false)
        return purged
      },
      logger: opts.logger,
    })
    this.admin.addPrivate('/status', (_req, res) => {
      const body = JSON.stringify(this.status(), null, 2) + '\n'
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
    this.admin.addReadinessCheck(() => {
      const waiting = [...themers].filter(([, t]) => t.version === '').map(([name]) => name)
      if (waiting.length > 0) return `themes not loaded for ${waiting.join(', ')}`
      // Loaded, but no theme could be had (theme server down at start, nothing persisted): pages would go out
      // unthemed. Each probe also starts a due refresh, so the site becomes ready once the theme server answers.
      const unusable = [...themers].filter(([, t]) => t.noUsableTheme).map(([name, t]) => { t.poke(); return name })
      return unusable.length === 0 ? undefined : `no usable theme for ${unusable.join(', ')}`
    })
    this.worker = new WorkerTier({
      config, logger: opts.logger, role: opts.workerRole ?? 'gateway',
      warm: url => this.warm(url), fetchPool: this.fetchPool, themers,
      checkThemes: () => runThemeCheck(this.config),
    })
    this.#uninstrumentWorker = instrumentWorker(this.metrics, this.worker)
    this.admin.addPrivate('/jobs', async (_req, res) => {
      const body = JSON.stringify({ depth: await this.worker.depth(), deadLetters: await this.worker.deadLetters(), themeCheck: this.worker.lastThemeCheck }, null, 2) + '\n'
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
    // Getters, so the gauges follow the current site layer after a reload.
    const gateway = this
    this.#uninstrument = instrument(this.metrics, {
      cache: this.cache, pool: { stats: () => gateway.pool.stats() }, fetchPool: this.fetchPool, transformPool: this.transformPool,
      get siteNames () { return gateway.config.sites.map(s => s.name) },
    })
    this.#accessLogger = opts.accessLogger ?? opts.logger
    this.#accessOut = opts.accessOut
    this.#finish = this.#finisher(config)
    // Registered whatever the config, so dashboards and alert rules always find them (test/deploy/observability.test.ts).
    const health = opts.redisHealth
    this.metrics.gauge('livery_redis_up', '1 while Redis answers, 0 while it is down or stalled and the gateway serves from its local tiers (no series without Redis)', [], set => {
      if (health !== undefined) set({}, health.check() === 'up' ? 1 : 0)
    })
    this.metrics.gauge('livery_theme_available', '1 while every theme of the site is compiled and in use, 0 while pages are served unthemed for want of one', ['site'], set => {
      for (const [site, themer] of this.#themers) {
        const themes = themer.engine.describe().themes
        set({ site }, themes.length > 0 && themes.every(th => th.available) ? 1 : 0)
      }
    })
    this.metrics.gauge('livery_http_connections_open', 'Client connections open to this process (idle keep-alive ones included)', [], set => set({}, this.#connections))
    this.metrics.gauge('livery_http_requests_active', 'Requests being answered by this process, cache hits included', [], set => set({}, this.#active.size))

    this.#wsProxy = createProxyServer({ ws: true, xfwd: true })
    this.#wsProxy.on('error', (err: unknown, _req: IncomingMessage, socket: ServerResponse | Socket) => {
      this.#logger.warn({ cause: (err as Error).message }, 'WebSocket proxying failed')
      socket.destroy()
    })

    this.server = createServer({
      maxHeaderSize, keepAliveTimeout: 5_000, requestTimeout: 300_000,
      // Only WebSocket upgrades are taken; any other Upgrade (h2c from curl --http2) is an
      // ordinary request whose hop-by-hop Upgrade is dropped, as nginx does.
      shouldUpgradeCallback: (req: IncomingMessage) => req.headers.upgrade?.toLowerCase() === 'websocket',
    }, (req, res) => {
      this.#onRequest(req, res)
    })
    this.server.on('connection', (socket: Socket) => {
      this.#connections++
      socket.once('close', () => { this.#connections-- })
    })
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.#onClientError(err, socket))
    this.server.on('connect', (req: IncomingMessage, socket: Duplex) => this.#onConnect(req, socket))
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head))
  }

  /** Builds every configured cache tier (memory, disk, Redis), then the gateway. */
  static async create (config: Config, opts: GatewayOptions): Promise<Gateway> {
    if (opts.store !== undefined) return new Gateway(config, opts)
    await checkCacheDirectory(config.cache.directory)
    const built = await createCacheStore(config.cache, opts.logger, { cluster: opts.cluster })
    return new Gateway(config, { ...opts, store: built.store, redisHealth: built.redisHealth, missLock: built.missLock })
  }

  get config (): Config {
    return this.#config
  }

  /** The current site layer's request pool. */
  get pool (): RequestPool {
    return this.#sites.pool
  }

  get themers (): ReadonlyMap<string, SiteThemer> {
    return this.#themers
  }

  #purgeRoute (config: Config): PurgeRoute {
    // The socket's peer, as Varnish's client.ip: an address a proxy reports is never enough to purge.
    const purgers = new TrustedProxies(config.admin.purgeFrom)
    // A tiered store reports which other processes and instances acknowledged the purge.
    const store = this.#store
    return createPurgeRoute({
      token: config.admin.token,
      purge: async (sel, o) => {
        const purged = store instanceof TieredStore ? await store.purgeReport(sel, o) : await this.cache.purge(sel, o)
        this.#warmAfterPurge(sel, o.warm === true)
        return purged
      },
      logger: this.#logger,
      allowMethod: req => purgers.trusts(req.socket.remoteAddress ?? ''),
    })
  }

  #finisher (config: Config): Finisher {
    return createFinisher({
      access: config.log.access, format: config.log.format, logger: this.#accessLogger, out: this.#accessOut, metrics: this.metrics,
      observe: (req, status, ctx) => {
        this.#traffic.record(ctx.site, status, ctx.cache)
        if (ctx.error !== undefined && ctx.error.status !== 499) {
          this.#recentErrors.add({ time: new Date().toISOString(), site: ctx.site, method: req.method ?? '-', path: ctx.path, status, code: ctx.error.code, message: ctx.error.message })
        }
      },
    })
  }

  #operatorView (): Omit<OperatorView, 'notice' | 'prefix'> {
    const traffic = this.#traffic.snapshot()
    const pool = this.pool.stats()
    const fetch = this.fetchPool.stats()
    const redis = this.#redisHealth?.check()
    return {
      version: liveryVersion,
      pid: process.pid,
      uptime: Math.round(process.uptime()),
      ready: this.admin.notReady(),
      sites: this.#config.sites.map(site => ({
        name: site.name, hosts: site.hosts, upstream: site.upstream,
        inFlight: pool.inFlight[site.name] ?? 0, queued: pool.queued[site.name] ?? 0,
        traffic: traffic.get(site.name),
        theme: this.#themers.get(site.name)?.engine.describe(),
      })),
      fetch: { jobsInFlight: fetch.jobsInFlight, jobsQueued: fetch.jobsQueued, circuits: fetch.circuits },
      redis,
      errors: this.#recentErrors.list(),
    }
  }

  #buildSites (config: Config): SiteLayer {
    return new SiteLayer(config, { logger: this.#logger, cache: this.cache, fetchPool: this.fetchPool, transformPool: this.transformPool, themes: this.#themes, hot: site => this.#hotPages(site) })
  }

  #hotPages (site: SiteConfig): HotPages | undefined {
    if (site.warm?.afterPurge !== true) return undefined
    let hot = this.#hot.get(site.name)
    if (hot === undefined) {
      hot = new HotPages({ hotHits: site.warm.hotHits })
      this.#hot.set(site.name, hot)
    }
    return hot
  }

  /**
   * Warms one page (the `warm` job): routes `url` to its site and fetches it
   * into the cache unless it is fresh there already.
   */
  async warm (url: string): Promise<WarmOutcome> {
    const u = new URL(url)
    const handler = this.#sites.router.match(u.host, u.pathname)
    if (handler === undefined) throw liveryError('LIVERY_ERR_WARM', url, 'no site answers this URL')
    return await handler.warm(u.host, u.pathname + u.search)
  }

  /** After a purge: warm the hot pages it covered (sites with warm.afterPurge), and with `warm: true` every URL it named. */
  #warmAfterPurge (sel: PurgeSelector, warmNamed: boolean): void {
    const urls = new Set<string>(warmNamed ? sel.urls ?? [] : [])
    for (const [site, hot] of this.#hot) {
      if (sel.site !== undefined && sel.site !== site) continue
      for (const url of hot.take(sel)) urls.add(url)
    }
    if (urls.size === 0) return
    this.worker.enqueueWarm([...urls]).then(
      added => { this.#logger.info({ urls: urls.size, added }, 'purge: warm jobs enqueued') },
      (err: unknown) => { this.#logger.warn({ err: (err as Error).message }, 'purge: cannot enqueue warm jobs; the pages fill on their next request') },
    )
  }

  #useSites (layer: SiteLayer): void {
    this.#sites = layer
    this.#themers.clear()
    for (const [name, themer] of layer.themers) this.#themers.set(name, themer)
  }

  /**
   * Applies a new configuration without dropping a connection, as `nginx -s
   * reload` does: a new site layer (pool, handlers, themers with their rules
   * files read again) takes the new requests once its rules compiled, and the
   * old one finishes what it admitted (within shutdownTimeout) in the
   * background. Sockets, cache tiers, the fetch pool and the threads stay.
   * Keys those own need a restart; they are reported, the rest applies. When
   * the new rules do not compile, the old layer keeps serving.
   */
  reload (config: Config): Promise<ReloadResult> {
    const previous = this.#reloading ?? Promise.resolve(undefined)
    const next = previous.catch(() => undefined).then(async (): Promise<ReloadResult> => {
      if (this.#draining) return { applied: false, problems: ['the gateway is shutting down'], restartNeeded: [] }
      const layer = this.#buildSites(config)
      try {
        await layer.load()
      } catch (err) {
        await layer.destroy()
        return { applied: false, problems: [(err as Error).message], restartNeeded: [] }
      }
      const restartNeeded = restartOnlyKeys(this.#config, config)
      const old = this.#sites
      this.#config = config
      this.#trusted = new TrustedProxies(config.trustedProxies)
      this.#useSites(layer)
      this.worker.sitesChanged(config)
      this.#purge = this.#purgeRoute(config)
      this.#timingToken = config.admin.token === '' ? undefined : tokenDigest(config.admin.token)
      this.admin.add('/purge', this.#purge)
      // Responses read the current finisher when they close: the old one gets no more lines.
      const finished = this.#finish
      this.#finish = this.#finisher(config)
      finished.close()
      this.#retire(old)
      return { applied: true, problems: [], restartNeeded }
    })
    this.#reloading = next
    return next
  }

  #retire (layer: SiteLayer): void {
    this.#retiring.add(layer)
    const timer = setTimeout(() => { layer.destroy().catch(() => undefined) }, this.#config.shutdownTimeout)
    timer.unref()
    layer.close().then(() => undefined, (err: unknown) => {
      this.#logger.warn({ err }, 'the replaced site layer did not close cleanly')
    }).finally(() => {
      clearTimeout(timer)
      this.#retiring.delete(layer)
    })
  }

  /**
   * Reads the fetch pool's persisted copies and loads every theme. Rejects
   * only for bad rules; an unreachable theme server leaves pages unthemed
   * until it answers.
   */
  ready (): Promise<void> {
    this.#ready ??= (async () => {
      await Promise.all([this.fetchPool.open(), this.assetPools.theme.open(), this.assetPools.other.open()])
      await this.#sites.load()
      this.worker.start()
    })()
    return this.#ready
  }

  async listen (port = this.config.listen.port, host = this.config.listen.host): Promise<AddressInfo> {
    await this.ready()
    if (this.config.admin.port > 0) {
      // The optional admin port serves the admin routes without the prefix (/metrics), for a scraper on a private network.
      this.#adminServer = createServer((req, res) => {
        const target = parseTarget(req.url)
        const ctx = newContext(typeof target === 'string' ? '-' : target.path)
        if (typeof target === 'string') { sendError(req, res, ctx, liveryError('LIVERY_ERR_BAD_REQUEST', target)); return }
        this.admin.handle(req, res, this.admin.prefix + target.path).catch((err: unknown) => sendError(req, res, ctx, err))
      })
      await listenOn(this.#adminServer, this.config.admin.port, host)
    }
    return await listenOn(this.server, port, host)
  }

  /** The admin port's address, when one is configured and listening. */
  get adminAddress (): AddressInfo | undefined {
    return this.#adminServer?.address() as AddressInfo | undefined
  }

  #onRequest (req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now()
    // First, so clientAddress(req) answers for every request; the scheme (a
    // trusted proxy's X-Forwarded-Proto) is also part of the cache key.
    const client = this.#trusted.resolve(req)
    const target = parseTarget(req.url)
    // Before anything uses it: a Host that could run into the path would let a client choose another URL's cache entry.
    const host = typeof target === 'string' ? target : requestHost(req, client.proto, target.authority)
    const isAdmin = typeof target !== 'string' && typeof host !== 'string' && !this.#draining && this.admin.owns(target.path)
    const handler = typeof target === 'string' || typeof host === 'string' || this.#draining || isAdmin
      ? undefined
      : this.#sites.router.match(host.raw, target.path)
    // A fresh hit in memory is answered here, synchronously (fresh-hit.ts); the rest goes on below, untouched.
    if (handler !== undefined && this.#freshHits && typeof target !== 'string' && typeof host !== 'string' && target.authority === undefined && this.watchdog.overloaded() === undefined) {
      const fresh = serveFreshHit(this.cache, handler, req, res, client, target, host.key, started)
      if (fresh !== undefined) {
        this.#freshHitCount++
        this.#track(res, fresh)
        return
      }
    }
    const ctx = newContext(typeof target === 'string' ? '-' : target.path, started)
    // Read now: by the time the access line is written the socket may be gone (trustedProxies decide whose word counts).
    ctx.client = client.remoteAddress
    this.#track(res, ctx)
    if (typeof target === 'string') {
      sendError(req, res, ctx, liveryError('LIVERY_ERR_BAD_REQUEST', target))
      return
    }
    if (typeof host === 'string') {
      sendError(req, res, ctx, liveryError('LIVERY_ERR_BAD_REQUEST', host))
      return
    }
    if (this.#draining) {
      res.setHeader('connection', 'close')
      sendError(req, res, ctx, liveryError('LIVERY_ERR_DRAINING'))
      return
    }
    if (isAdmin) {
      countBodyBytes(req, res, ctx)
      this.admin.handle(req, res, target.path, target.pathAndQuery).catch((err: unknown) => {
        this.#logger.error({ err }, 'admin route failed')
        sendError(req, res, ctx, err)
      })
      return
    }
    if (handler === undefined) {
      sendError(req, res, ctx, liveryError('LIVERY_ERR_NO_SITE', JSON.stringify(host.raw)))
      return
    }
    // After routing: under event-loop lag the watchdog sheds the sites whose transforms cause it, not the others' hits.
    // shed() rather than a bare error: it publishes the shed, so livery_requests_shed_total{reason="overloaded"} counts it.
    const overloaded = this.watchdog.shed(handler.site.name)
    if (overloaded !== undefined) {
      sendError(req, res, ctx, overloaded)
      return
    }
    if (req.method === 'PURGE' || req.method === 'BAN') {
      // Varnish-style PURGE/BAN as CMS plugins send them: the admin token, or an address in admin.purgeFrom.
      ctx.site = handler.site.name
      const url = `${client.proto}://${host.key}${target.pathAndQuery}`
      const selector = methodPurgeSelector(req, host.key, target.pathAndQuery)
      if (isLiveryError(selector)) { sendError(req, res, ctx, selector); return }
      this.#purge.handlePurgeMethod(req, res, url, handler.site.name, selector).catch((err: unknown) => sendError(req, res, ctx, err))
      return
    }
    // Taken in any case, so the token never travels upstream.
    const timingToken = takeTimingToken(req, this.#timingToken)
    if (handler.site.serverTiming || client.trusted || timingToken) addServerTiming(res, ctx)
    handler.handle(req, res, ctx, { pathAndQuery: target.pathAndQuery, host: host.key, scheme: client.proto }).catch((err: unknown) => {
      this.#logger.error({ err }, 'request failed unexpectedly')
      sendError(req, res, ctx, err)
    })
  }

  /**
   * Counts the response as active until it closes, then records it (access
   * log, metrics). One listener function for every response, with the
   * context kept on the response (and the request in `res.req`), instead
   * of two closures per request.
   */
  #track (res: ServerResponse, ctx: RequestContext): void {
    this.#active.add(res)
    ;(res as Tracked)[kTracked] = ctx
    res.on('close', this.#onClose)
  }

  readonly #onClose = ((gateway: Gateway) => function (this: ServerResponse): void {
    gateway.#active.delete(this)
    gateway.#finish(this.req, this, (this as Tracked)[kTracked]!)
    // Idle kept-alive connections stay open while requests are in flight, so one reused meanwhile gets the 503.
    if (gateway.#draining && gateway.#active.size === 0) gateway.server.closeIdleConnections()
  })(this)

  /** Malformed requests Node's parser refused: answer like nginx would, then close. */
  #onClientError (err: NodeJS.ErrnoException, socket: Duplex): void {
    const reply = clientErrorReply(err, socket.writable)
    if (reply === undefined) {
      socket.destroy()
      return
    }
    this.#logger.info({ code: err.code, status: reply.status }, 'refused a malformed request')
    socket.end(reply.text)
  }

  #onConnect (req: IncomingMessage, socket: Duplex): void {
    socket.on('error', () => socket.destroy())
    const refusal = connectRefusal()
    this.#logger.info({ method: req.method, code: refusal.error.code }, 'refused a CONNECT request')
    socket.end(refusal.text)
  }

  #onUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const target = parseTarget(req.url)
    const client = this.#trusted.resolve(req)
    const host = typeof target === 'string' ? target : requestHost(req, client.proto, target.authority)
    const handler = typeof target === 'string' || typeof host === 'string' ? undefined : this.#sites.router.match(host.raw, target.path)
    if (this.#draining || handler === undefined || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      socket.end(upgradeRefusal)
      return
    }
    socket.on('error', () => socket.destroy())
    // http-proxy-3 (xfwd) appends to whatever X-Forwarded-* came in: an untrusted peer's must not.
    if (!client.trusted) for (const name of Object.keys(req.headers)) if (isForwardingHeader(name)) delete req.headers[name]
    this.#wsProxy.ws(req, socket, head, { target: handler.site.upstream, changeOrigin: !handler.site.preserveHost })
  }

  /**
   * Graceful: stop accepting, answer new requests on open connections with
   * 503 + Connection: close, let in-flight requests finish within
   * shutdownTimeout, then cut what is left.
   */
  close (): Promise<void> {
    if (this.#closing !== undefined) return this.#closing
    this.#draining = true
    // Responses still to be written end their connection (Connection: close) rather than keep it alive for a request that would find it gone.
    for (const res of this.#active) if (!res.headersSent) res.shouldKeepAlive = false
    this.#closing = new Promise<void>(resolve => {
      const timer = setTimeout(() => this.server.closeAllConnections(), this.config.shutdownTimeout)
      timer.unref()
      stopAccepting(this.server, () => {
        clearTimeout(timer)
        resolve()
      })
      if (this.#active.size === 0) this.server.closeIdleConnections()
    }).then(async () => {
      if (this.#adminServer !== undefined) {
        const admin = this.#adminServer
        await new Promise<void>(resolve => { admin.close(() => resolve()); admin.closeAllConnections() })
      }
      // Every request has been answered and logged: write the access lines still buffered.
      this.#finish.close()
      this.#uninstrument()
      this.#uninstrumentWorker()
      this.#reclaimer.stop()
      this.#wsProxy.close()
      // destroy() tears the components down itself; a close() after destroy() rejects in undici.
      if (this.#destroyed) return
      await this.#reloading?.catch(() => undefined)
      // First: running jobs still use the site layer.
      await this.worker.close()
      await Promise.all([...this.#retiring].map(layer => layer.close()))
      await this.#sites.close()
      await Promise.all([this.watchdog.close(), this.cache.close()])
      await Promise.all([this.fetchPool.close(), this.assetPools.theme.close(), this.assetPools.other.close(), this.transformPool?.close()])
      await this.#fetchLock?.close()
    })
    return this.#closing
  }

  async destroy (): Promise<void> {
    this.#draining = true
    this.#destroyed = true
    this.server.closeAllConnections()
    await Promise.all([this.close(), this.worker.destroy(), this.watchdog.destroy(), this.#sites.destroy(), ...[...this.#retiring].map(layer => layer.destroy()), this.cache.destroy(), this.fetchPool.destroy(), this.assetPools.theme.destroy(), this.assetPools.other.destroy(), this.transformPool?.destroy(), this.#fetchLock?.destroy()])
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.close()
  }

  /** What /_livery/status shows: readiness, sites with their theme versions, and each component's stats. */
  status (): Record<string, unknown> {
    return {
      pid: process.pid,
      uptime: Math.round(process.uptime()),
      ready: this.admin.notReady(),
      inFlight: this.#active.size,
      sites: this.config.sites.map(site => ({
        name: site.name,
        hosts: site.hosts,
        pathPrefix: site.pathPrefix,
        upstream: site.upstream,
        theme: this.#themeStatus(site.name),
      })),
      cache: {
        ...this.cache.stats(),
        // Of the hits, how many took the synchronous fast path (fresh-hit.ts); the others ran the general path.
        freshHits: this.#freshHitCount,
        // cache.memory.maxSize holds per process (docs/configuration.md): the gateway's memory tier is that times the processes.
        memoryBudget: memoryBudget(this.config),
      },
      redis: this.#redisHealth?.describe(),
      pool: this.pool.stats(),
      fetch: this.fetchPool.stats(),
      themeAssets: { theme: this.assetPools.theme.stats(), other: this.assetPools.other.stats() },
      transforms: this.transformPool?.stats(),
      worker: { queue: this.worker.shared ? 'redis' : 'in-process', themeCheck: this.worker.lastThemeCheck },
      watchdog: this.watchdog.stats(),
    }
  }

  #themeStatus (site: string): Record<string, unknown> | undefined {
    const themer = this.themers.get(site)
    if (themer === undefined) return undefined
    return { ...themer.engine.describe(), usable: !themer.noUsableTheme }
  }

  get inFlight (): number {
    return this.#active.size
  }
}

/**
 * `threads: 0` shares the cores between the processes: one process per core
 * gets one thread each, a single process gets one per core. A fixed number
 * is taken as given.
 */
function threadsPerProcess (config: Config): number {
  if (config.threads > 0) return config.threads
  const processes = config.processes === 0 ? availableParallelism() : config.processes
  return Math.max(1, Math.floor(resolveThreads(0) / processes))
}

function memoryBudget (config: Config): { perProcess: number, processes: number, total: number } {
  const processes = config.processes === 0 ? availableParallelism() : config.processes
  return { perProcess: config.cache.memory.maxSize, processes, total: config.cache.memory.maxSize * processes }
}
