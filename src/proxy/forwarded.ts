/**
 * Who the client is, and what the upstream is told about it (issue 11,
 * item 11). `X-Forwarded-For`, `-Proto`, `-Host` (and the rest of
 * `X-Forwarded-*`), RFC 7239 `Forwarded` and `X-Real-IP` are only believed
 * from peers in `trustedProxies`: from anyone else they are dropped before
 * the request goes upstream, so a client cannot plant an address or a
 * scheme that the origin reflects into a page the cache then shares.
 *
 * From a trusted peer the chain is kept and extended, the scheme it reports
 * becomes the request's scheme (it is part of the cache key), and the client
 * address is the rightmost address of the chain that is not itself a
 * trusted proxy (nginx's `real_ip_recursive on`).
 */
import type { IncomingMessage } from 'node:http'
import { BlockList, isIP } from 'node:net'

export interface ClientInfo {
  /** The client's address: the socket's peer, or what trusted proxies say it was. */
  readonly remoteAddress: string
  /** The socket's peer. */
  readonly peer: string
  /** True when the peer is a trusted proxy: incoming forwarding headers are kept and extended. */
  readonly trusted: boolean
  /** `https` when the client spoke TLS to us, or a trusted proxy says it did to the proxy. */
  readonly proto: 'http' | 'https'
  /** The protocol of the connection to us (the `proto=` of our own `Forwarded` element). */
  readonly hopProto: 'http' | 'https'
  readonly host: string
}

/** The headers that describe earlier hops, kept only from trusted peers. */
export function isForwardingHeader (name: string): boolean {
  return name === 'forwarded' || name === 'x-real-ip' || name.startsWith('x-forwarded-')
}

/** Where `resolve` leaves its answer on the request: one property, cheaper per request than a WeakMap entry. */
const kClient = Symbol('livery.client')
type WithClient = IncomingMessage & { [kClient]?: ClientInfo }

export class TrustedProxies {
  readonly #list = new BlockList()
  readonly #empty: boolean

  /** `ranges`: addresses or CIDR ranges, IPv4 or IPv6 (checked by the config). */
  constructor (ranges: readonly string[]) {
    this.#empty = ranges.length === 0
    for (const r of ranges) {
      const [address, bits] = splitRange(r)
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4'
      if (bits === undefined) this.#list.addAddress(address, type)
      else this.#list.addSubnet(address, bits, type)
    }
  }

  trusts (address: string): boolean {
    if (this.#empty) return false
    const a = unmapped(address)
    const type = isIP(a)
    return type !== 0 && this.#list.check(a, type === 6 ? 'ipv6' : 'ipv4')
  }

  /** Works out the client of `req` once; `clientInfo(req)` and `clientAddress(req)` read it afterwards. */
  resolve (req: IncomingMessage): ClientInfo {
    const socket = req.socket
    const peer = socket.remoteAddress ?? ''
    const tls = 'encrypted' in socket && socket.encrypted === true
    const h = req.headers
    let info: ClientInfo
    if (this.#empty || (h['x-forwarded-for'] === undefined && h.forwarded === undefined && h['x-forwarded-proto'] === undefined) || !this.trusts(peer)) {
      const proto = tls ? 'https' : 'http'
      info = { remoteAddress: peer, peer, trusted: false, proto, hopProto: proto, host: h.host ?? '' }
    } else {
      const chain = forwardedFor(h)
      let client = peer
      for (let i = chain.length - 1; i >= 0; i--) {
        client = chain[i]
        if (!this.trusts(client)) break
      }
      const hopProto = tls ? 'https' : 'http'
      info = { remoteAddress: client, peer, trusted: true, proto: forwardedProto(h) ?? hopProto, hopProto, host: h.host ?? '' }
    }
    (req as WithClient)[kClient] = info
    return info
  }
}

/** What `TrustedProxies.resolve` found for `req`; without it, the socket's own view (nothing trusted). */
export function clientInfo (req: IncomingMessage): ClientInfo {
  const known = (req as WithClient)[kClient]
  if (known !== undefined) return known
  const socket = req.socket
  const peer = socket.remoteAddress ?? ''
  const proto = 'encrypted' in socket && socket.encrypted === true ? 'https' : 'http'
  return { remoteAddress: peer, peer, trusted: false, proto, hopProto: proto, host: req.headers.host ?? '' }
}

/** The client's address for logs: the socket's peer, or the address trusted proxies reported. */
export function clientAddress (req: IncomingMessage): string {
  return clientInfo(req).remoteAddress
}

/** The address chain, oldest first: X-Forwarded-For when present, else the `for=` of each `Forwarded` element. */
function forwardedFor (h: IncomingMessage['headers']): string[] {
  const xff = h['x-forwarded-for']
  if (xff !== undefined) {
    return (Array.isArray(xff) ? xff.join(',') : xff).split(',').map(s => unmapped(s.trim())).filter(s => s !== '')
  }
  const out: string[] = []
  for (const element of forwardedElements(h.forwarded)) {
    const node = element.get('for')
    if (node !== undefined) out.push(nodeAddress(node))
  }
  return out
}

/** The original scheme: the first X-Forwarded-Proto value, else the first `Forwarded` element's `proto=`. */
function forwardedProto (h: IncomingMessage['headers']): 'http' | 'https' | undefined {
  const xfp = h['x-forwarded-proto']
  let value: string | undefined
  if (xfp !== undefined) value = (Array.isArray(xfp) ? xfp[0] : xfp).split(',')[0].trim()
  else value = forwardedElements(h.forwarded)[0]?.get('proto')
  const v = value?.toLowerCase()
  return v === 'https' || v === 'http' ? v : undefined
}

/** RFC 7239 §4: elements separated by commas, pairs by semicolons, values tokens or quoted strings. */
export function forwardedElements (value: string | string[] | undefined): Map<string, string>[] {
  if (value === undefined) return []
  const text = Array.isArray(value) ? value.join(',') : value
  const out: Map<string, string>[] = []
  let current = new Map<string, string>()
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf('=', i)
    if (eq === -1) break
    const name = text.slice(i, eq).replace(/^[\s,;]+/, '').trim().toLowerCase()
    let j = eq + 1
    let v = ''
    if (text[j] === '"') {
      j++
      while (j < text.length && text[j] !== '"') {
        if (text[j] === '\\') j++
        v += text[j] ?? ''
        j++
      }
      j++
    } else {
      while (j < text.length && text[j] !== ';' && text[j] !== ',') v += text[j++]
      v = v.trim()
    }
    if (name !== '' && !current.has(name)) current.set(name, v)
    while (j < text.length && text[j] === ' ') j++
    if (text[j] === ',' || j >= text.length) {
      out.push(current)
      current = new Map()
    }
    i = j + 1
  }
  if (current.size > 0) out.push(current)
  return out
}

/** `"[2001:db8::1]:4711"` → `2001:db8::1`; `192.0.2.1:80` → `192.0.2.1`; `unknown`, `_hidden` as they are. */
function nodeAddress (node: string): string {
  if (node.startsWith('[')) {
    const end = node.indexOf(']')
    return end === -1 ? node : node.slice(1, end)
  }
  const colon = node.indexOf(':')
  return colon === -1 || node.indexOf(':', colon + 1) !== -1 ? node : node.slice(0, colon)
}

/** `::ffff:192.0.2.1` (an IPv4 client on a dual-stack socket) → `192.0.2.1`. */
function unmapped (address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
}

function splitRange (range: string): [address: string, bits: number | undefined] {
  const slash = range.indexOf('/')
  return slash === -1 ? [range, undefined] : [range.slice(0, slash), Number(range.slice(slash + 1))]
}

const token = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * The last element built, by its inputs: one client on a keep-alive
 * connection (or a trusted proxy in front) sends the same peer and Host on
 * every request, and `isIP` and the token check are not free (issue 15).
 */
let last = { peer: '', host: '', proto: 'http', element: 'for=unknown;proto=http' }

/** One `Forwarded` element for this hop (RFC 7239 §4, §6: IPv6 nodes are quoted and bracketed). */
export function forwardedElement (peer: string, host: string, proto: string): string {
  if (peer === last.peer && host === last.host && proto === last.proto) return last.element
  const p = unmapped(peer)
  const node = p === '' ? 'unknown' : isIP(p) === 6 ? `"[${p}]"` : p
  let out = `for=${node}`
  if (host !== '') out += `;host=${token.test(host) ? host : `"${host.replace(/["\\]/g, '\\$&')}"`}`
  const element = `${out};proto=${proto}`
  last = { peer, host, proto, element }
  return element
}
