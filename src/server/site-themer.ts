/**
 * A site's theming on the request path: the ThemeEngine (rules + compiled
 * theme) fed by the fetch pool, so theme pages, assets and href
 * subrequests get stale-while-revalidate, single-flight, bounded waits and
 * the circuit breaker.
 *
 * Theme freshness is checked with one number comparison per request
 * (`#freshUntil`); only when the theme's copy is due does a request join the
 * refresh (bounded by fetch.wait through the fetch pool), and only a changed
 * version recompiles. The version is part of the cache key of themed pages,
 * so once a new theme is compiled no page themed with the old one is served.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { SiteConfig, FetchConfig } from '../config/types.ts'
import type { Logger } from '../log.ts'
import { coarseNow } from '../clock.ts'
import { ThemeEngine, createDefaultLoader, type ResourceLoader } from '../theme/index.ts'
import { TransformScheduler } from './transform-scheduler.ts'
import type { FetchPool } from '../fetcher/index.ts'
import type { TransformPool } from '../pool/index.ts'
import { hasCode, liveryError } from '../errors.ts'
import type { PageThemer, ThemeOutcome } from './themer.ts'

export interface SiteThemerOptions {
  readonly site: SiteConfig
  readonly fetch: FetchConfig
  readonly fetchPool: FetchPool
  readonly logger: Logger
  /** The transform threads: pages of at least `theme.threshold` bytes are themed there, within `theme.timeout`. */
  readonly transformPool?: TransformPool
  /**
   * Where the gateway serves this site's theme assets from the fetch pool
   * (`/_livery/theme/<site>/`); theme-relative links are rewritten onto it
   * unless `theme.absolutePrefix` names another place (a CDN).
   */
  readonly assetPrefix?: string
}

const taskModule = new URL('./transform-task.ts', import.meta.url)
export { taskModule as transformTaskModule }


const fileLoader = createDefaultLoader()

/**
 * Asset URLs found inside the theme's stylesheets (images, fonts, imports) that the theme-asset route treats as
 * the theme's own; beyond this, further ones count as "other" assets (theme-assets.ts).
 */
const maxDiscoveredAssets = 2000
/** `url(...)` and `@import "..."` references in CSS. */
const cssRefRe = /url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)|@import\s+(?:"([^"]*)"|'([^']*)')/gi

function escapeRegExp (s: string): string { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') }
function decodeSafe (s: string): string { try { return decodeURIComponent(s) } catch { return s } }

/** Whether the background refresh keeps this copy fresh (see SiteThemer.nextRefreshAt). */
function refreshedAhead (r: { freshUntil: number, fetchedAt: number }, ahead: number): boolean {
  return ahead > 0 && r.freshUntil - r.fetchedAt > 2 * ahead
}

export class SiteThemer implements PageThemer {
  readonly engine: ThemeEngine
  /** Inline or threaded, timed-out pages remembered; only with a transform pool. */
  readonly scheduler: TransformScheduler | undefined
  readonly #pool: FetchPool
  readonly #minTtl: number
  readonly #unthemedTtl: number
  readonly #logger: Logger
  readonly #base: string
  /** Where theme-relative links point after compiling (the gateway's asset route, or theme.absolutePrefix). */
  readonly #prefix: string | undefined
  /** Asset URLs the compiled theme links to, for the compiled version `#assetsOf`. */
  #referenced = new Set<string>()
  #assetsOf: unknown = null
  readonly #discovered = new Set<string>()
  /** Stylesheet URL → the version last scanned for references. */
  readonly #scanned = new Map<string, string>()
  #freshUntil = 0
  #refreshing: Promise<void> | undefined

  constructor (opts: SiteThemerOptions) {
    const theme = opts.site.theme
    if (theme === undefined) throw new TypeError(`site ${opts.site.name} has no theme`)
    this.#pool = opts.fetchPool
    this.#minTtl = opts.fetch.minTtl
    this.#unthemedTtl = theme.rememberTimeout ?? 0
    this.#logger = opts.logger.child({ site: opts.site.name, module: 'theme' })
    this.#base = theme.base
    this.#prefix = theme.absolutePrefix !== '' ? theme.absolutePrefix : opts.assetPrefix
    // Rule files are local; everything over http goes through the fetch pool.
    this.scheduler = opts.transformPool === undefined
      ? undefined
      : new TransformScheduler({
        site: opts.site.name, pool: opts.transformPool, threshold: theme.threshold, timeout: theme.timeout,
        inlineBudget: theme.inlineBudget ?? 0, rememberTimeout: theme.rememberTimeout ?? 0,
      })
    const loader: ResourceLoader = (url, signal) => /^https?:/i.test(url) ? opts.fetchPool.loader(url, signal) : fileLoader(url, signal)
    this.engine = new ThemeEngine({
      rulesFile: theme.rules,
      themeBase: theme.base === '' ? undefined : theme.base,
      absolutePrefix: theme.absolutePrefix !== '' ? theme.absolutePrefix : opts.assetPrefix,
      params: Object.fromEntries(theme.params.map(p => {
        const eq = p.indexOf('=')
        return eq === -1 ? [p, ''] : [p.slice(0, eq), p.slice(eq + 1)]
      })),
      loader,
      logger: opts.logger,
      transform: this.scheduler?.run,
    })
  }

  /** Loads rules and themes; rejects only for bad rules (an unreachable theme leaves pages unthemed). */
  async load (): Promise<void> {
    await this.engine.load()
    this.#scheduleNextCheck()
  }

  /**
   * The URL of a theme asset named relative to the theme (`css/site.css`),
   * or undefined when it would leave the theme's folder or is not http(s).
   */
  assetUrl (relative: string): string | undefined {
    const themeHref = this.engine.describe().themes[0]?.href
    const base = this.#base !== '' ? this.#base : themeHref === undefined ? '' : new URL('.', themeHref).href
    if (!/^https?:/i.test(base)) return undefined
    let url: URL
    try { url = new URL(relative, base) } catch { return undefined }
    url.hash = ''
    return url.href.startsWith(base) ? url.href : undefined
  }

  /**
   * Whether the theme links to the asset at `url` (an assetUrl() result), directly or from one of its
   * stylesheets: those are served from the theme's asset store; anything else is an "other" asset.
   */
  isThemeAsset (url: string): boolean {
    const compiled = this.engine.compiled
    if (compiled !== this.#assetsOf) {
      this.#assetsOf = compiled
      this.#referenced = this.#linkedAssets(compiled)
    }
    return this.#referenced.has(url) || this.#discovered.has(url)
  }

  /** Every link the compiled theme (segments, slots, inline rule markup) makes onto the prefix, as asset URLs. */
  #linkedAssets (compiled: unknown): Set<string> {
    const found = new Set<string>()
    const prefix = this.#prefix
    if (compiled === null || prefix === undefined || prefix === '') return found
    const base = prefix.endsWith('/') ? prefix : prefix + '/'
    const re = new RegExp(escapeRegExp(base) + '([^"\'\\s()<>?#,\\\\]*)', 'g')
    for (const m of JSON.stringify(compiled).matchAll(re)) {
      const url = this.assetUrl(decodeSafe(m[1]))
      if (url !== undefined) found.add(url)
    }
    return found
  }

  /** Records the assets a served theme stylesheet at `url` refers to (bounded by maxDiscoveredAssets); once per version. */
  discoverCssAssets (url: string, version: string, css: () => string): void {
    if (this.#scanned.get(url) === version) return
    if (this.#scanned.size >= maxDiscoveredAssets) this.#scanned.delete(this.#scanned.keys().next().value as string)
    this.#scanned.set(url, version)
    for (const m of css().matchAll(cssRefRe)) {
      const ref = (m[1] ?? m[2] ?? m[3] ?? m[4] ?? m[5] ?? '').trim()
      if (ref === '' || /^(data|blob|about):/i.test(ref) || ref.startsWith('#')) continue
      let abs: URL
      try { abs = new URL(ref, url) } catch { continue }
      abs.hash = ''
      abs.search = ''
      const base = this.assetUrl('')
      if (base === undefined || !abs.href.startsWith(base)) continue
      if (this.#discovered.size >= maxDiscoveredAssets) return
      this.#discovered.add(abs.href)
    }
  }

  /** True when the rules name themes and none of them could be loaded: pages go out unthemed. */
  get noUsableTheme (): boolean {
    const themes = this.engine.describe().themes
    return this.engine.version !== '' && themes.length > 0 && themes.every(t => !t.available)
  }

  /** Starts a theme refresh if one is due (readiness probes call it, so a site with no usable theme keeps retrying). */
  poke (): void {
    void this.currentVersion()
  }

  /** theme.rememberTimeout: a timed-out page's unthemed copy is stored this long (see SiteHandler). */
  get unthemedTtl (): number {
    return this.#unthemedTtl
  }

  get version (): string {
    return this.engine.version
  }

  /**
   * The version a request should be keyed with. Synchronous while the theme is
   * fresh; otherwise waits (at most fetch.wait, via the fetch pool) for the refresh.
   */
  currentVersion (): string | Promise<string> {
    if (coarseNow() < this.#freshUntil) return this.engine.version
    return this.#refresh().then(() => this.engine.version)
  }

  #refresh (): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        const themes = this.engine.describe().themes
        // get() serves fresh copies at once and bounds the wait for a refresh.
        const outcomes = await Promise.allSettled(themes.map(t => this.#pool.get(t.href)))
        const changed = outcomes.some((o, i) => o.status === 'fulfilled' && o.value.resource.version !== themes[i].version)
        const missing = themes.some(t => !t.available)
        if (changed || missing) await this.engine.load()
      } catch (err) {
        this.#logger.warn({ err: (err as Error).message }, 'refreshing the theme failed; the current copy stays in use')
      } finally {
        this.#scheduleNextCheck()
        this.#refreshing = undefined
      }
    })()
    return this.#refreshing
  }

  /** The theme pages and the theme assets the fetch pool holds for this site. */
  #themeUrls (): string[] {
    const hrefs = this.engine.describe().themes.map(t => t.href)
    const base = this.#base !== '' ? this.#base : hrefs[0] === undefined ? '' : new URL('.', hrefs[0]).href
    const assets = /^https?:/i.test(base) ? this.#pool.urls().filter(u => u.startsWith(base) && !hrefs.includes(u)) : []
    return [...hrefs, ...assets]
  }

  /**
   * When the next background refresh is due: `ahead` ms before the first of
   * the site's theme copies goes stale. Copies that live no longer than
   * 2 × `ahead` are left to the request path's own refresh (bounded by
   * fetch.wait): refreshing them ahead would multiply the theme server's
   * load for little gain. Infinity when nothing qualifies.
   */
  nextRefreshAt (ahead: number): number {
    let at = Infinity
    for (const url of this.#themeUrls()) {
      const r = this.#pool.peek(url)
      if (r === undefined) return coarseNow()
      if (refreshedAhead(r, ahead)) at = Math.min(at, r.freshUntil - ahead)
    }
    return at
  }

  /**
   * The theme-refresh job: refreshes every theme page and asset that goes
   * stale within `ahead` ms, recompiles when a theme page changed, and
   * rejects naming the URLs that failed (the old copies stay in use), so a
   * failing theme server shows in the log and the metrics while pages are
   * still themed from the copies in hand. Resolves how many it refreshed.
   */
  async refreshAhead (ahead: number): Promise<number> {
    // The precise clock: the job was timed with it, and the coarse one may lag the due time.
    const now = Date.now()
    const themes = this.engine.describe().themes
    const due = this.#themeUrls().filter(url => {
      const r = this.#pool.peek(url)
      return r === undefined || (refreshedAhead(r, ahead) && r.freshUntil - ahead <= now)
    })
    const outcomes = await Promise.allSettled(due.map(url => this.#pool.refresh(url)))
    const changed = themes.some(t => {
      const i = due.indexOf(t.href)
      const o = i === -1 ? undefined : outcomes[i]
      return !t.available || (o?.status === 'fulfilled' && o.value.resource.version !== t.version)
    })
    if (changed) await this.engine.load()
    // Only a refresh moves the request path's next check: with nothing due
    // (copies too short-lived to refresh ahead), rescheduling would push a
    // stale theme's check back by minTtl without refreshing it (issue 10).
    if (due.length > 0) this.#scheduleNextCheck()
    const failed = due.filter((_u, i) => outcomes[i].status === 'rejected')
    if (failed.length > 0) {
      const first = outcomes.find(o => o.status === 'rejected') as PromiseRejectedResult
      throw liveryError('LIVERY_ERR_THEME_REFRESH', failed.join(', '), (first.reason as Error).message)
    }
    return due.length
  }

  /** Next check when the first theme copy goes stale; never sooner than minTtl after a failure. */
  #scheduleNextCheck (): void {
    const now = coarseNow()
    let until = Infinity
    for (const t of this.engine.describe().themes) {
      const r = this.#pool.peek(t.href)
      until = Math.min(until, r === undefined || r.freshUntil <= now ? now + Math.min(this.#minTtl, 1000) : r.freshUntil)
    }
    this.#freshUntil = until === Infinity ? now + this.#minTtl : until
  }

  shouldTheme (req: { method: string, url: string, headers: IncomingHttpHeaders }, res: { status: number, headers: IncomingHttpHeaders | Record<string, string | string[] | undefined> }): boolean {
    return this.engine.shouldTheme(req, { status: res.status, headers: res.headers as IncomingHttpHeaders })
  }

  async apply (input: Parameters<PageThemer['apply']>[0]): Promise<ThemeOutcome> {
    try {
      return await this.engine.apply({ ...input, headers: input.headers as IncomingHttpHeaders })
    } catch (err) {
      // The transform threads stopped a transform past its budget, or could not take it:
      // the page goes out unthemed rather than failing.
      if (hasCode(err, 'LIVERY_ERR_TRANSFORM_TIMEOUT')) return { kind: 'timeout', reason: err.message }
      return { kind: 'unavailable', reason: (err as Error).message }
    }
  }

  close (): Promise<void> {
    return this.engine.close()
  }
}
