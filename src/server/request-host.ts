/**
 * The Host header, checked before routing, the cache or the upstream see it
 * (issue 11, item 10). RFC 9112 §3.2: a request with no Host (HTTP/1.1),
 * more than one Host line, or an invalid Host gets 400. Valid is RFC 3986
 * §3.2.2 `host [ ":" port ]`: a reg-name (which covers IPv4) or an
 * IP-literal in brackets. Anything else (`/ ? # @`, spaces, quotes, control
 * bytes) would let the Host run into the path of a cache key or a URL the
 * origin builds from it.
 */
import type { IncomingMessage } from 'node:http'
import { isIPv6 } from 'node:net'
import { normaliseHost } from '../cache/key.ts'

/** IPvFuture (RFC 3986 §3.2.2). */
const ipvFuture = /^v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+$/

/** unreserved / sub-delims (RFC 3986 §3.2.2), by character code. */
const regNameChar = new Uint8Array(128)
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=") regNameChar[c.charCodeAt(0)] = 1
const isHex = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)

/**
 * A reg-name: unreserved, pct-encoded and sub-delims, at least one. A loop
 * rather than a regular expression, as it runs for every request (issue 15, item 6).
 */
function isRegName (s: string): boolean {
  if (s.length === 0) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 128 && regNameChar[c] === 1) continue
    // pct-encoded: a charCodeAt past the end is NaN, which is not hex.
    if (c !== 37 /* % */ || !isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) return false
    i += 2
  }
  return true
}

function isDigits (s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 48 || c > 57) return false
  }
  return true
}

export interface RequestHost {
  /** The Host as routing and the upstream get it ('' when an HTTP/1.0 request has none). */
  readonly raw: string
  /** Lowercase, the default port of `scheme` dropped: the host part of a cache key. */
  readonly key: string
}

/**
 * Returns the checked Host, or a string saying why the request is refused.
 * `authority` is the host[:port] of an absolute-form target, which must
 * agree with Host (RFC 9112 §3.2.2).
 */
export function requestHost (req: IncomingMessage, scheme: string, authority: string | undefined): RequestHost | string {
  const raw = req.headers.host
  if (raw === undefined) {
    // Node refuses an HTTP/1.1 request without Host itself (requireHostHeader); HTTP/1.0 may omit it.
    if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) return 'the request has no Host header'
    return authority === undefined ? { raw: '', key: '' } : { raw: authority, key: normaliseHost(authority, scheme) }
  }
  // Node keeps the first of several Host lines and drops the rest silently.
  let lines = 0
  const rh = req.rawHeaders
  for (let i = 0; i < rh.length; i += 2) {
    const n = rh[i]
    if (n.length === 4 && n.toLowerCase() === 'host' && ++lines > 1) return 'the request has more than one Host header'
  }
  const canonical = canonicalHost(raw)
  if (canonical === undefined) return `the Host header ${JSON.stringify(raw.slice(0, 100))} is not a valid host[:port]`
  const key = normaliseHost(canonical, scheme)
  if (authority !== undefined && normaliseHost(authority, scheme) !== key) {
    return `the request target's host ${JSON.stringify(authority.slice(0, 100))} does not match the Host header ${JSON.stringify(raw.slice(0, 100))}`
  }
  return { raw, key }
}

/** `host[:port]` with the port as a plain decimal number, or undefined when `value` is not one. */
export function canonicalHost (value: string): string | undefined {
  let name: string
  let rest: string
  if (value.charCodeAt(0) === 91 /* [ */) {
    const end = value.indexOf(']')
    if (end === -1) return undefined
    const literal = value.slice(1, end)
    if (!isIPv6(literal) && !ipvFuture.test(literal)) return undefined
    name = value.slice(0, end + 1)
    rest = value.slice(end + 1)
    if (rest !== '' && rest.charCodeAt(0) !== 58 /* : */) return undefined
  } else {
    const colon = value.indexOf(':')
    name = colon === -1 ? value : value.slice(0, colon)
    rest = colon === -1 ? '' : value.slice(colon)
    if (!isRegName(name)) return undefined
  }
  if (rest === '') return name
  const port = rest.slice(1)
  if (!isDigits(port)) return undefined
  if (port === '') return name
  const n = Number(port)
  if (n > 65535) return undefined
  return `${name}:${n}`
}
