/**
 * Which pages of a site are hot: cache hits counted per URL since the page
 * was stored, in a bounded LRU, so a purge can tell the worker tier which
 * pages to fetch again (warm after purge). Counting is one LRU update per
 * hit, and only on sites that turned `warm.afterPurge` on.
 */
import { LRUCache } from 'lru-cache'
import type { PurgeSelector } from '../cache/store.ts'

export class HotPages {
  readonly #hits: LRUCache<string, { n: number }>
  readonly #threshold: number

  constructor (opts: { readonly hotHits: number, readonly max?: number }) {
    this.#threshold = opts.hotHits
    this.#hits = new LRUCache({ max: opts.max ?? 10_000 })
  }

  /** A cache hit on `url` (absolute, as cache entries store it). */
  hit (url: string): void {
    const c = this.#hits.get(url)
    if (c === undefined) this.#hits.set(url, { n: 1 })
    else c.n++
  }

  /**
   * The hot URLs a purge selector covers, forgotten as it returns them (a
   * purged page starts cold). Tags are not known here, so a tag purge
   * (or a site or all purge) covers every hot page of the site: warming one
   * that was not purged is a cache hit and costs nothing upstream.
   */
  take (sel: PurgeSelector): string[] {
    const out: string[] = []
    const broad = sel.all === true || sel.site !== undefined || (sel.tags?.length ?? 0) > 0
    for (const [url, c] of this.#hits.entries()) {
      if (c.n < this.#threshold) continue
      if (broad || sel.urls?.includes(url) === true || sel.prefixes?.some(p => url.startsWith(p)) === true) {
        out.push(url)
      }
    }
    for (const url of out) this.#hits.delete(url)
    return out
  }
}
