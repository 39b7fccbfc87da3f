/**
 * Cookie rules (issue 11, item 9). A request carrying a session cookie is a
 * logged-in (or otherwise personal) view: it passes the cache, goes upstream
 * and its answer is never stored, as Varnish's `return (pass)` in vcl_recv
 * does for CMS sites. Every other cookie (analytics, consent banners) is
 * forwarded as sent but neither passes nor varies the key: the cache looks
 * the request up as if it carried no Cookie, `Vary: Cookie` included.
 *
 * Patterns are globs on the cookie name (`*` any run of characters, `?` one),
 * matched case-sensitively against the whole name, as cookie names are
 * (RFC 6265 §4.1.1). They compile to one regular expression per site; the
 * default list is `defaultPassCookies` in src/config/schema.ts.
 */
import type { IncomingHttpHeaders } from 'node:http'

/** A predicate on a Cookie header value: true when one of its cookies is a session cookie. */
export type CookieRule = (cookieHeader: string | string[]) => boolean

export function passCookieRule (patterns: readonly string[]): CookieRule {
  if (patterns.length === 0) return () => false
  const re = new RegExp('^(?:' + patterns.map(globSource).join('|') + ')$')
  return (header) => {
    const value = typeof header === 'string' ? header : header.join('; ')
    let start = 0
    while (start < value.length) {
      let end = value.indexOf(';', start)
      if (end === -1) end = value.length
      const eq = value.indexOf('=', start)
      const name = value.slice(start, eq === -1 || eq > end ? end : eq).trim()
      if (name !== '' && re.test(name)) return true
      start = end + 1
    }
    return false
  }
}

function globSource (glob: string): string {
  let out = ''
  for (const c of glob) {
    if (c === '*') out += '.*'
    else if (c === '?') out += '.'
    else out += c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')
  }
  return out
}

/** The request headers the cache keys on: the same, without Cookie. */
export function withoutCookie (headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const { cookie: _ignored, ...rest } = headers
  return rest
}
