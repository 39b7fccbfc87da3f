/**
 * Cache keys (issue 11, item 10). A key is built from parts that cannot run
 * into each other: the site, the scheme, the normalised host and the
 * request target, separated by NUL. None of them can hold a NUL (site names
 * are `[A-Za-z0-9_.-]`, the Host is checked against RFC 3986 before routing,
 * and the request target's control bytes are refused), so two different
 * requests never share a key. The theme version (`extra`) comes last, for
 * the same reason.
 *
 * Purges never look at keys (they match on the entry's url, site and tags),
 * so the key's layout is free to change.
 */

export interface KeyParts {
  readonly site: string
  /** `http` or `https`. */
  readonly scheme: string
  /** Lowercase host[:port] without the scheme's default port (`normaliseHost`). */
  readonly host: string
  /** Path and query. */
  readonly target: string
  /** The theme version of a themed page, '' otherwise. */
  readonly extra: string
}

export function cacheKey (p: KeyParts): string {
  const key = p.site + '\u0000' + p.scheme + '\u0000' + p.host + '\u0000' + p.target
  return p.extra === '' ? key : key + '\u0000' + p.extra
}

/** `WWW.Example.org:80` → `www.example.org` for http; other ports stay. */
export function normaliseHost (host: string, scheme: string): string {
  const h = host.toLowerCase()
  const colon = h.lastIndexOf(':')
  if (colon === -1 || h.endsWith(']')) return h
  const port = h.slice(colon + 1)
  if (port === '' || (scheme === 'http' && port === '80') || (scheme === 'https' && port === '443')) return h.slice(0, colon)
  return h
}
