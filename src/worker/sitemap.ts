/**
 * Reads the page URLs out of a sitemap (sitemaps.org protocol): the `<loc>`
 * of every `<url>`, or of every `<sitemap>` in a sitemap index. A regular
 * scan, not a parser: the format is flat, and a hostile or broken file can
 * at worst yield wrong strings, which are then checked as URLs.
 */

export interface Sitemap {
  /** Page URLs (a `<urlset>`). */
  readonly pages: string[]
  /** Nested sitemaps (a `<sitemapindex>`). */
  readonly sitemaps: string[]
}

/** The protocol's own limit per file. */
export const maxSitemapUrls = 50_000

const entities: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

export function parseSitemap (xml: string): Sitemap {
  const isIndex = /<sitemapindex[\s>]/i.test(xml)
  const out: string[] = []
  const re = /<loc>\s*([^<]*?)\s*<\/loc>/gi
  for (let m = re.exec(xml); m !== null && out.length < maxSitemapUrls; m = re.exec(xml)) {
    const url = m[1].replace(/&(amp|lt|gt|quot|apos);/g, (_e, name: string) => entities[name])
    if (URL.canParse(url) && /^https?:/i.test(url)) out.push(url)
  }
  return isIndex ? { pages: [], sitemaps: out } : { pages: out, sitemaps: [] }
}
