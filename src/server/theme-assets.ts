/**
 * Theme assets (CSS, JS, images the theme references) served by the gateway
 * from the fetch pool under `<admin prefix>/theme/<site>/<path>`.
 *
 * Why not leave them as absolute URLs on the theme server: the theme server
 * is exactly the thing that may be slow or down, and a page themed from a
 * persisted copy is no use if its stylesheet then fails to load. Through the
 * fetch pool, assets get the same stale-while-revalidate, single-flight,
 * circuit breaking and persistence as the theme page; browsers and CDNs
 * cache them by the headers below. An operator with a CDN for theme assets
 * sets `theme.absolutePrefix` instead.
 *
 * The route takes no token, so it must not be a way to fill the gateway with
 * whatever the theme server holds: assets the compiled theme links to (and
 * those its stylesheets link to) live in one bounded store, any other path in
 * a second, smaller one, and neither is the store of theme pages and rules,
 * so no amount of asset traffic can evict a theme or delete its persisted copy.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FetchPool } from '../fetcher/index.ts'
import { coarseNow } from '../clock.ts'
import type { AdminPrefixRoute } from './admin.ts'
import { text } from './admin.ts'
import type { SiteThemer } from './site-themer.ts'

/** The two asset stores: what the theme links to, and a small one for every other path under the theme's folder. */
export interface ThemeAssetPools {
  readonly theme: FetchPool
  readonly other: FetchPool
}

/**
 * Sizes of the two stores (entries; bytes). The theme's own set is bounded by what it links to (typically tens of
 * files) plus what its stylesheets link to (capped in site-themer.ts); other paths get a small share.
 */
export const themeAssetLimits = { theme: { entries: 2000, bytes: 128 * 1024 * 1024 }, other: { entries: 200, bytes: 32 * 1024 * 1024 } } as const

export function createThemeAssetsRoute (themers: ReadonlyMap<string, SiteThemer>, pools: ThemeAssetPools): AdminPrefixRoute {
  return async (req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      text(res, 405, 'theme assets take GET or HEAD\n', { allow: 'GET, HEAD' })
      return
    }
    const q = rest.indexOf('?')
    const path = q === -1 ? rest : rest.slice(0, q)
    const slash = path.indexOf('/')
    const themer = slash === -1 ? undefined : themers.get(path.slice(0, slash))
    const url = themer?.assetUrl(decodeURIComponentSafe(path.slice(slash + 1)))
    if (url === undefined) {
      text(res, 404, 'no such theme asset\n')
      return
    }
    const own = (themer as SiteThemer).isThemeAsset(url)
    let resource
    try {
      resource = (await (own ? pools.theme : pools.other).get(url)).resource
    } catch (err) {
      text(res, 502, `theme asset ${url} is unavailable: ${(err as Error).message}\n`)
      return
    }
    if (own && /^text\/css\b/i.test(resource.headers['content-type'] ?? '')) {
      const body = resource.body
      ;(themer as SiteThemer).discoverCssAssets(url, resource.version, () => body.toString('utf8'))
    }
    const etag = /^(W\/)?"/.test(resource.version) ? resource.version : `"${resource.version}"`
    const maxAge = Math.max(0, Math.floor((resource.freshUntil - coarseNow()) / 1000))
    const headers: Record<string, string> = {
      etag,
      'cache-control': `public, max-age=${maxAge}, stale-while-revalidate=86400, stale-if-error=86400`,
      'x-content-type-options': 'nosniff',
    }
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers)
      res.end()
      return
    }
    headers['content-type'] = resource.headers['content-type'] ?? 'application/octet-stream'
    headers['content-length'] = String(resource.body.length)
    res.writeHead(200, headers)
    res.end(req.method === 'HEAD' ? undefined : resource.body)
  }
}

function decodeURIComponentSafe (s: string): string {
  try { return decodeURIComponent(s) } catch { return s }
}
