/**
 * Compile-time rewriting of theme-relative URLs to the absolute prefix
 * (Diazo's `absolute-prefix`), so a theme that links `css/site.css` works on
 * every content path.
 */

/** Schemes, fragments and template placeholders are never rewritten. */
const keep = /^(?:[a-z][a-z0-9+.-]*:|#|\{|\$|\[)/i

/** A URL the prefix can apply to: anything but a scheme, a fragment or a placeholder (root-relative included). */
export function isRelativeUrl (u: string): boolean {
  return !keep.test(u.trim())
}

/**
 * Joins a URL to the prefix as Diazo does (Python's urljoin): `./` and `../` resolve like a browser would; with a
 * prefix that is a full URL, root-relative (`/x`) and protocol-relative (`//h/x`) URLs take its origin too, and an
 * empty one becomes the prefix itself.
 */
export function absolutise (u: string, prefix: string): string {
  if (!isRelativeUrl(u)) return u
  const t = u.trim()
  const base = prefix.endsWith('/') ? prefix : prefix + '/'
  if (/^[a-z][a-z0-9+.-]*:/i.test(base)) return new URL(t, base).href
  // A path prefix cannot change root- or protocol-relative URLs: urljoin keeps them as they are.
  if (t.startsWith('/')) return u
  // Resolve on a dummy origin and keep only the path part.
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
    .replace(/url\(\s*(['"]?)([^'")]*)\1\s*\)/gi, (m, q: string, u: string) => u.trim() !== '' && isRelativeUrl(u) ? `url(${q}${absolutise(u, prefix)}${q})` : m)
    .replace(/@import\s+(['"])([^'"]+)\1/gi, (m, q: string, u: string) => isRelativeUrl(u) ? `@import ${q}${absolutise(u, prefix)}${q}` : m)
}

const urlAttrs = new Set(['src', 'href', 'xlink:href', 'background', 'poster', 'data'])

/** Rewrites one attribute of a theme element; returns the value unchanged when it is not a URL. */
export function rewriteAttr (name: string, value: string, prefix: string): string {
  if (urlAttrs.has(name)) return absolutise(value, prefix)
  if (name === 'srcset') return rewriteSrcset(value, prefix)
  if (name === 'style') return rewriteCss(value, prefix)
  return value
}

/** IE conditional comments carry markup (`<!--[if IE]><link href="ie.css"><style>@import "ie.css"</style><![endif]-->`): rewrite inside too. */
export function rewriteConditionalComment (data: string, prefix: string): string {
  if (!/^\[if[^\]]*\]>/i.test(data)) return data
  const attrs = data.replace(/(\s)(src|href|xlink:href|background|srcset|style)\s*=\s*(["'])(.*?)\3/gis,
    (_m, ws: string, name: string, q: string, v: string) => `${ws}${name}=${q}${name.toLowerCase() === 'style' ? v : rewriteAttr(name.toLowerCase(), v, prefix)}${q}`)
  // url() and @import: in <style> blocks and style attributes alike.
  return rewriteCss(attrs, prefix)
}
