/**
 * The part of the gateway a reload replaces (as `nginx -s reload` replaces
 * its workers): the request pool with the sites' limits, each site's
 * handler (upstream dispatcher, timeouts, cache rules), the themers with
 * their freshly read rules files, and the router over them. The listening
 * sockets, the cache tiers, the fetch pool, the transform threads and the
 * metrics registry live on in the gateway, so a reload drops neither a
 * connection nor a cached object.
 */
import type { Config, SiteConfig } from '../config/types.ts'
import type { HotPages } from '../worker/hot-pages.ts'
import type { Logger } from '../log.ts'
import type { HttpCache } from '../cache/index.ts'
import type { FetchPool } from '../fetcher/index.ts'
import { RequestPool, type TransformPool } from '../pool/index.ts'
import { SiteRouter } from './router.ts'
import { SiteHandler } from './site-handler.ts'
import { SiteThemer } from './site-themer.ts'
import type { PageThemer } from './themer.ts'

export interface SiteLayerDeps {
  readonly logger: Logger
  readonly cache: HttpCache
  readonly fetchPool: FetchPool
  readonly transformPool: TransformPool | undefined
  /** Themers given by the caller (tests), by site name; they are not built here. */
  readonly themes?: ReadonlyMap<string, PageThemer>
  /** Hit counting for warming after a purge (sites with warm.afterPurge); the gateway keeps it across reloads. */
  readonly hot?: (site: SiteConfig) => HotPages | undefined
}

export class SiteLayer {
  readonly config: Config
  readonly pool: RequestPool
  readonly themers: ReadonlyMap<string, SiteThemer>
  readonly handlers: readonly SiteHandler[]
  readonly router: SiteRouter<SiteHandler>
  #closing: Promise<void> | undefined

  constructor (config: Config, deps: SiteLayerDeps) {
    this.config = config
    this.pool = new RequestPool(config.pool, config.sites, { logger: deps.logger })
    const themers = new Map<string, SiteThemer>()
    for (const site of config.sites) {
      if (site.theme === undefined || deps.themes?.get(site.name) !== undefined) continue
      themers.set(site.name, new SiteThemer({
        site, fetch: config.fetch, fetchPool: deps.fetchPool, transformPool: deps.transformPool, logger: deps.logger,
        assetPrefix: `${config.admin.prefix}/theme/${site.name}/`,
      }))
    }
    this.themers = themers
    this.handlers = config.sites.map(site => new SiteHandler(site, {
      logger: deps.logger,
      cache: deps.cache,
      pool: this.pool,
      theme: deps.themes?.get(site.name) ?? themers.get(site.name),
      maxThemedSize: config.cache.memory.maxEntrySize,
      hot: deps.hot?.(site),
    }))
    this.router = new SiteRouter(this.handlers.map(h => ({ site: h.site, value: h })))
  }

  /** Compiles every theme's rules; rejects for bad rules (an unreachable theme server is not a failure). */
  async load (): Promise<void> {
    await Promise.all([...this.themers.values()].map(t => t.load()))
  }

  /** Graceful: resolves once the requests this layer admitted have finished. Idempotent. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all(this.handlers.map(h => h.close()))
      await Promise.all([this.pool.close(), ...[...this.themers.values()].map(t => t.close())])
    })()
    return this.#closing
  }

  async destroy (): Promise<void> {
    await Promise.all([...this.handlers.map(h => h.destroy()), this.pool.destroy()])
  }
}
