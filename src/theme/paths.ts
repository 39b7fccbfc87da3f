/**
 * Diazo's `if-path` matching works on whole path segments:
 * `/news` matches `/news` and below (prefix), `news/` matches paths ending in
 * that segment (suffix), `/news/` matches exactly, and `news` matches the
 * segment anywhere. A bare `/` both starts and ends the pattern, so it matches
 * only the root, as in Diazo.
 */

/** Adds the leading and trailing slash Diazo's matching compares against. */
function normalise (path: string): string {
  let p = path.startsWith('/') ? path : '/' + path
  if (!p.endsWith('/')) p += '/'
  return p
}

export function pathMatches (pattern: string, path: string): boolean {
  const p = normalise(path)
  const starts = pattern.startsWith('/')
  const ends = pattern.endsWith('/')
  const core = pattern.replace(/^\/+|\/+$/g, '')
  if (core === '') return starts || ends ? p === '/' : true
  const seg = '/' + core + '/'
  if (starts && ends) return p === seg
  if (starts) return p.startsWith(seg)
  if (ends) return p.endsWith(seg)
  return p.includes(seg)
}
