/**
 * Compile-time rewriting of theme-relative URLs to the absolute prefix
 * (Diazo's `absolute-prefix`), so a theme that links `css/site.css` works on
 * every content path.
 */

/** Schemes, root-relative paths, fragments and template placeholders are left alone. */
const notRelative = /^(?:[a-z][a-z0-9+.-]*:|\/|#|\?|\{|\$|\[)/i

export function isRelativeUrl (u: string): boolean {
  const t = u.trim()
  return t !== '' && !notRelative.test(t)
}

/** Joins a relative URL to the prefix, resolving `./` and `../` like a browser would. */
export function absolutise (u: string, prefix: string): string {
  if (!isRelativeUrl(u)) return u
  const t = u.trim()
  const base = prefix.endsWith('/') ? prefix : prefix + '/'
  if (/^[a-z][a-z0-9+.-]*:/i.test(base)) return new URL(t, base).href
  // A path prefix: resolve on a dummy origin and keep only the path part.
  const r = new URL(t, 'http://livery.invalid' + (base.startsWith('/') ? base : '/' + base))
  return r.pathname + r.search + r.hash
}

export function rewriteSrcset (v: string, prefix: string): string {
  return v.split(',').map(part => {
    const m = /^(\s*)(\S+)(.*)$/s.exec(part)
    return m === null ? part : m[1] + absolutise(m[2], prefix) + m[3]
  }).join(',')
}

/** `url(...)` and `@import "..."` in CSS text. */
export function rewriteCss (css: string, prefix: string): string {
  return css
    .replace(/url\(\s*(['"]?)([^'")]*)\1\s*\)/gi, (m, q: string, u: string) => isRelativeUrl(u) ? `url(${q}${absolutise(u, prefix)}${q})` : m)
    .replace(/@import\s+(['"])([^'"]+)\1/gi, (m, q: string, u: string) => isRelativeUrl(u) ? `@import ${q}${absolutise(u, prefix)}${q}` : m)
}

const urlAttrs = new Set(['src', 'href', 'background', 'poster', 'data'])

/** Rewrites one attribute of a theme element; returns the value unchanged when it is not a URL. */
export function rewriteAttr (name: string, value: string, prefix: string): string {
  if (urlAttrs.has(name)) return absolutise(value, prefix)
  if (name === 'srcset') return rewriteSrcset(value, prefix)
  if (name === 'style') return rewriteCss(value, prefix)
  return value
}

/** IE conditional comments carry markup (`<!--[if IE]><link href="ie.css"><![endif]-->`): rewrite inside too. */
export function rewriteConditionalComment (data: string, prefix: string): string {
  if (!/^\[if[^\]]*\]>/i.test(data)) return data
  return data.replace(/\b(src|href|background|srcset|style)\s*=\s*(["'])(.*?)\2/gis,
    (_m, name: string, q: string, v: string) => `${name}=${q}${rewriteAttr(name.toLowerCase(), v, prefix)}${q}`)
}
