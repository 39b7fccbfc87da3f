/**
 * The worker tier (DESIGN §7): the job kinds, their queues and handlers, and
 * the schedules that enqueue them.
 *
 * - `warm` (key: the URL) — fetch one page into the cache tiers (after a
 *   purge, or for a prefetch); rate-limited by `worker.rate`.
 * - `prefetch` (key: site, or site + source) — read a site's URL list or
 *   sitemap and enqueue a `warm` job per page.
 * - `theme-refresh` (key: site) — refresh the site's theme pages and assets
 *   `worker.themeRefreshAhead` before they go stale.
 * - `theme-check` (key: `all`) — `livery check` of every theme and rules
 *   file, every `worker.themeCheck`.
 *
 * `warm` and `prefetch` produce cache entries every instance shares, so with
 * Redis they go on BullMQ for `livery worker` processes; without it the
 * gateway runs them in-process. Theme refresh and check keep a process's own
 * theme copies fresh, so every gateway and worker process runs them
 * in-process for itself.
 */
import type { Config, SiteConfig } from '../config/types.ts'
import type { Logger } from '../log.ts'
import type { FetchPool } from '../fetcher/index.ts'
import type { SiteThemer } from '../server/site-themer.ts'
import type { WarmOutcome } from '../server/site-handler.ts'
import { liveryError } from '../errors.ts'
import { themeJobChannel } from './channels.ts'
import { BullQueue } from './bullmq-queue.ts'
import { MemoryQueue } from './memory-queue.ts'
import { parseSitemap } from './sitemap.ts'
import type { DeadLetter, QueueDepth, QueueOptions, WorkQueue } from './queue.ts'

export const sharedKinds = ['warm', 'prefetch'] as const
export const localKinds = ['theme-refresh', 'theme-check'] as const
export type JobKind = typeof sharedKinds[number] | typeof localKinds[number]

export interface WarmJob { readonly url: string }
export interface PrefetchJob { readonly site: string, readonly sitemap?: string, readonly urls?: readonly string[] }
export interface ThemeJob { readonly site: string }

export interface ThemeCheckResult {
  readonly ok: boolean
  readonly at: number
  readonly problems: readonly string[]
}

export interface WorkerTierOptions {
  readonly config: Config
  readonly logger: Logger
  /** 'gateway': produce shared jobs, and run them too when there is no Redis. 'worker': consume shared jobs from Redis. */
  readonly role: 'gateway' | 'worker'
  /** Fetches one page into the cache (Gateway.warm). */
  readonly warm: (url: string) => Promise<WarmOutcome>
  readonly fetchPool: FetchPool
  readonly themers: ReadonlyMap<string, SiteThemer>
  /** The periodic theme check; omitted, there is none. */
  readonly checkThemes?: () => Promise<ThemeCheckResult>
  /** Jobs of the shared kinds run at once here. @default config.worker.concurrency */
  readonly concurrency?: number
}

export class WorkerTier {
  readonly warm: WorkQueue<WarmJob>
  readonly prefetch: WorkQueue<PrefetchJob>
  readonly themeRefresh: MemoryQueue<ThemeJob>
  readonly themeCheck: MemoryQueue<ThemeJob>
  /** True when the shared kinds are on Redis. */
  readonly shared: boolean
  readonly #opts: WorkerTierOptions
  readonly #log: Logger
  readonly #timers = new Set<NodeJS.Timeout>()
  #lastCheck: ThemeCheckResult | undefined
  /** The current configuration: a reload replaces the sites. */
  #config: Config
  /** Sites whose theme refresh is scheduled. */
  readonly #scheduled = new Set<string>()
  #started = false
  #refreshConsuming = false
  #closed = false

  constructor (opts: WorkerTierOptions) {
    const { config } = opts
    this.#opts = opts
    this.#config = config
    this.#log = opts.logger.child({ module: 'worker' })
    const w = config.worker
    const base: QueueOptions = { attempts: w.attempts, backoff: w.backoff, rate: 0, maxDeadLetters: w.maxDeadLetters }
    const redis = config.cache.redis
    this.shared = redis !== undefined
    const sharedQueue = <D>(kind: string, rate: number): WorkQueue<D> => redis === undefined
      ? new MemoryQueue<D>({ ...base, rate, kind, logger: opts.logger })
      : new BullQueue<D>({ ...base, rate, kind, url: redis.url, prefix: `${redis.prefix}worker`, logger: opts.logger, closeTimeout: config.shutdownTimeout })
    this.warm = sharedQueue<WarmJob>('warm', w.rate)
    this.prefetch = sharedQueue<PrefetchJob>('prefetch', 0)
    this.themeRefresh = new MemoryQueue<ThemeJob>({ ...base, kind: 'theme-refresh', logger: opts.logger })
    this.themeCheck = new MemoryQueue<ThemeJob>({ ...base, attempts: 1, kind: 'theme-check', logger: opts.logger })
  }

  /** Starts the consumers and schedules this process runs. */
  start (): void {
    const { config, role } = this.#opts
    this.#started = true
    const concurrency = this.#opts.concurrency ?? config.worker.concurrency
    const consumeShared = role === 'worker' ? this.shared : !this.shared
    if (consumeShared) {
      this.warm.process(async job => { await this.#opts.warm(job.data.url) }, { concurrency })
      this.prefetch.process(async job => { await this.#prefetch(job.data) }, { concurrency: 1 })
      for (const site of config.sites) {
        const warm = site.warm
        if (warm !== undefined && warm.interval > 0 && (warm.urls.length > 0 || warm.sitemap !== '')) {
          this.#every(warm.interval, () => this.prefetch.enqueue(site.name, { site: site.name }))
        }
      }
    }
    if (this.#opts.themers.size > 0) {
      this.themeRefresh.process(async job => { await this.#refreshTheme(job.data.site) }, { concurrency: 2 })
      this.#refreshConsuming = true
      for (const site of this.#opts.themers.keys()) this.#scheduleThemeRefresh(site)
      this.#scheduled.clear()
      for (const site of this.#opts.themers.keys()) this.#scheduled.add(site)
      const check = this.#opts.checkThemes
      if (check !== undefined && config.worker.themeCheck > 0) {
        this.themeCheck.process(async () => { await this.#check(check) }, { concurrency: 1 })
        this.#every(config.worker.themeCheck, () => this.themeCheck.enqueue('all', { site: '' }))
      }
    }
  }

  /**
   * After a reload: the new configuration's sites are the ones prefetch
   * reads, and themed sites the reload added get their refresh schedule (the
   * themers map is the gateway's, already holding the new layer's themers).
   */
  sitesChanged (config: Config): void {
    this.#config = config
    if (!this.#started) return
    if (this.#opts.themers.size > 0 && !this.#refreshConsuming) {
      this.themeRefresh.process(async job => { await this.#refreshTheme(job.data.site) }, { concurrency: 2 })
      this.#refreshConsuming = true
    }
    for (const site of this.#opts.themers.keys()) {
      if (this.#scheduled.has(site)) continue
      this.#scheduled.add(site)
      this.#scheduleThemeRefresh(site)
    }
  }

  /** Enqueues a warm job per URL; resolves how many were new. */
  async enqueueWarm (urls: readonly string[]): Promise<number> {
    let added = 0
    for (const url of urls) if (await this.warm.enqueue(url, { url })) added++
    return added
  }

  /** The last periodic theme check, for /_livery/status. */
  get lastThemeCheck (): ThemeCheckResult | undefined {
    return this.#lastCheck
  }

  async depth (): Promise<Record<JobKind, QueueDepth>> {
    const [warm, prefetch, refresh, check] = await Promise.all([this.warm.depth(), this.prefetch.depth(), this.themeRefresh.depth(), this.themeCheck.depth()])
    return { warm, prefetch, 'theme-refresh': refresh, 'theme-check': check }
  }

  async deadLetters (): Promise<DeadLetter[]> {
    const lists = await Promise.all(this.#queues().map(q => q.deadLetters()))
    return lists.flat()
  }

  /** Stops the schedules and consumers; running jobs finish. */
  async close (): Promise<void> {
    this.#stopSchedules()
    await Promise.all(this.#queues().map(q => q.close()))
  }

  /** Stops the schedules and consumers, and aborts the running jobs. */
  async destroy (): Promise<void> {
    this.#stopSchedules()
    await Promise.all(this.#queues().map(q => q.destroy()))
  }

  #stopSchedules (): void {
    this.#closed = true
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
  }

  #queues (): ReadonlyArray<Pick<WorkQueue<never>, 'close' | 'destroy' | 'deadLetters'>> {
    return [this.warm, this.prefetch, this.themeRefresh, this.themeCheck]
  }

  #every (interval: number, fn: () => Promise<unknown>): void {
    const timer = setInterval(() => {
      fn().catch((err: unknown) => { this.#log.warn({ err: (err as Error).message }, 'cannot enqueue a scheduled job') })
    }, interval)
    timer.unref()
    this.#timers.add(timer)
  }

  #after (delay: number, fn: () => void): void {
    if (this.#closed) return
    const timer = setTimeout(() => { this.#timers.delete(timer); fn() }, delay)
    timer.unref()
    this.#timers.add(timer)
  }

  #scheduleThemeRefresh (site: string): void {
    const themer = this.#opts.themers.get(site)
    if (themer === undefined) {
      // The site lost its theme in a reload.
      this.#scheduled.delete(site)
      return
    }
    const { worker, fetch } = this.#config
    if (worker.themeRefreshAhead <= 0) return
    const at = themer.nextRefreshAt(worker.themeRefreshAhead)
    // Nothing long-lived enough to refresh ahead: look again after a default lifetime.
    const delay = at === Infinity ? fetch.ttl : Math.max(fetch.minTtl, at - Date.now())
    this.#after(delay, () => {
      this.themeRefresh.enqueue(site, { site }).catch((err: unknown) => {
        this.#log.warn({ site, err: (err as Error).message }, 'cannot enqueue the theme refresh')
      })
    })
  }

  async #refreshTheme (site: string): Promise<void> {
    const themer = this.#opts.themers.get(site)
    if (themer === undefined) {
      this.#scheduled.delete(site)
      return
    }
    try {
      const refreshed = await themer.refreshAhead(this.#config.worker.themeRefreshAhead)
      if (themeJobChannel.hasSubscribers) themeJobChannel.publish({ site, ok: true, check: false, refreshed })
    } catch (err) {
      const error = (err as Error).message
      // Before any page is served unthemed: the copies in hand stay in use (stale-if-error).
      this.#log.warn({ site, err: error }, 'theme refresh failed; pages stay themed from the copies in hand')
      if (themeJobChannel.hasSubscribers) themeJobChannel.publish({ site, ok: false, check: false, error })
      throw err
    } finally {
      // A retry after a failure is the queue's; this is the next regular refresh (a no-op while the retry waits).
      this.#scheduleThemeRefresh(site)
    }
  }

  async #check (check: () => Promise<ThemeCheckResult>): Promise<void> {
    const result = await check()
    this.#lastCheck = result
    if (result.ok) this.#log.info('theme check: all themes and rules OK')
    else this.#log.warn({ problems: result.problems }, 'theme check found problems')
    if (themeJobChannel.hasSubscribers) themeJobChannel.publish({ site: '', ok: result.ok, check: true, error: result.problems.join('; ') })
  }

  async #prefetch (job: PrefetchJob): Promise<void> {
    const site = this.#config.sites.find(s => s.name === job.site)
    if (site === undefined) throw liveryError('LIVERY_ERR_WARM', job.site, 'no such site')
    const urls = (job.urls ?? (job.sitemap === undefined ? site.warm?.urls ?? [] : [])).map(u => absoluteUrl(site, u))
    const sitemap = job.sitemap ?? (job.urls === undefined ? site.warm?.sitemap ?? '' : '')
    if (sitemap !== '') {
      const { resource } = await this.#opts.fetchPool.get(sitemap)
      const parsed = parseSitemap(resource.body.toString('utf8'))
      urls.push(...parsed.pages)
      for (const nested of parsed.sitemaps) await this.prefetch.enqueue(`${site.name} ${nested}`, { site: site.name, sitemap: nested })
    }
    const added = await this.enqueueWarm(urls.filter((u): u is string => u !== undefined))
    this.#log.info({ site: site.name, urls: urls.length, added, sitemap: sitemap === '' ? undefined : sitemap }, 'prefetch: warm jobs enqueued')
  }
}

/** A path on the site becomes a URL on its first exact host; absolute URLs pass. */
function absoluteUrl (site: SiteConfig, u: string): string | undefined {
  if (/^https?:\/\//i.test(u)) return u
  const host = site.hosts.find(h => !h.includes('*'))
  return host === undefined ? undefined : `http://${host}${u.startsWith('/') ? '' : '/'}${u}`
}
