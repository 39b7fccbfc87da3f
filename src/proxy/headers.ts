/**
 * Header hygiene between client and upstream.
 *
 * RFC 9110 §7.6.1: Connection, every header it names, and the classic
 * hop-by-hop set (Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-*) belong to one connection and must not be forwarded.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import { forwardedElement, isForwardingHeader, type ClientInfo } from './forwarded.ts'

const hopByHop: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  // HTTP/2 pseudo and connection-specific headers never travel over HTTP/1.1.
  'http2-settings',
])

/** Names listed in Connection, lowercased, plus the fixed hop-by-hop set. */
function connectionNamed (value: string | string[] | undefined): Set<string> | undefined {
  // What browsers send names only a field that is hop-by-hop anyway: no set per request.
  if (value === undefined || value === 'keep-alive' || value === 'Keep-Alive') return undefined
  const out = new Set<string>()
  for (const part of (Array.isArray(value) ? value.join(',') : value).split(',')) {
    const name = part.trim().toLowerCase()
    if (name !== '') out.add(name)
  }
  return out
}

export function isHopByHop (name: string, named?: ReadonlySet<string>): boolean {
  return hopByHop.has(name) || name.startsWith('proxy-') || (named?.has(name) ?? false)
}

/** Copies `headers` without hop-by-hop fields (and the `consumed` ones); values keep their arrays. */
export function stripHopByHop (headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>, consumed?: ReadonlySet<string>): Record<string, string | string[]> {
  const named = connectionNamed(headers.connection)
  const out: Record<string, string | string[]> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || isHopByHop(name, named) || consumed?.has(name) === true) continue
    out[name] = value
  }
  return out
}

/** What the request headers need to know of the upstream (built once per site). */
export interface UpstreamTarget {
  /** The upstream's own `host[:port]`, sent when the site does not preserve Host. */
  readonly upstreamHost: string
  readonly preserveHost: boolean
}

const viaToken = '1.1 livery'

const joined = (v: string | string[]): string => Array.isArray(v) ? v.join(', ') : v

/**
 * The request headers sent upstream: hop-by-hop removed, Via appended, Host
 * kept or rewritten. The forwarding headers (X-Forwarded-*, Forwarded,
 * X-Real-IP) of an untrusted peer are dropped and set afresh; those of a
 * trusted proxy are kept, X-Forwarded-For and Forwarded extended with this
 * hop (a chain, as nginx's $proxy_add_x_forwarded_for).
 */
export function upstreamRequestHeaders (headers: IncomingHttpHeaders, ctx: ClientInfo, target: UpstreamTarget): OutgoingHttpHeaders {
  // One copy: hop-by-hop fields, Expect (Node answers 100-continue itself,
  // and undici refuses to send it) and an untrusted peer's forwarding fields stay behind.
  const named = connectionNamed(headers.connection)
  const trusted = ctx.trusted
  const out: OutgoingHttpHeaders = {}
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || name === 'expect' || isHopByHop(name, named) || (!trusted && isForwardingHeader(name))) continue
    out[name] = value
  }
  const peer = ctx.peer
  const element = forwardedElement(peer, ctx.host, ctx.hopProto)
  if (ctx.trusted) {
    const xff = headers['x-forwarded-for']
    const fwd = headers.forwarded
    out['x-forwarded-for'] = xff === undefined ? peer : `${joined(xff)}, ${peer}`
    out['x-forwarded-proto'] = headers['x-forwarded-proto'] ?? ctx.proto
    out['x-forwarded-host'] = headers['x-forwarded-host'] ?? ctx.host
    out.forwarded = fwd === undefined ? element : `${joined(fwd)}, ${element}`
  } else {
    out['x-forwarded-for'] = peer
    out['x-forwarded-proto'] = ctx.proto
    out['x-forwarded-host'] = ctx.host
    out.forwarded = element
  }
  const via = headers.via
  out.via = via === undefined ? viaToken : `${joined(via)}, ${viaToken}`
  out.host = target.preserveHost && ctx.host !== '' ? ctx.host : target.upstreamHost
  return out
}

/**
 * Response headers for the client: hop-by-hop removed, Via appended, and the
 * `consumed` fields (cache directives meant for this gateway alone:
 * Surrogate-Control, the site's targeted field) removed.
 */
export function clientResponseHeaders (headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>, consumed?: ReadonlySet<string>): Record<string, string | string[]> {
  const out = stripHopByHop(headers, consumed)
  const via = out.via
  out.via = via === undefined ? viaToken : `${Array.isArray(via) ? via.join(', ') : via}, ${viaToken}`
  return out
}
