/**
 * `Server-Timing` (W3C Server Timing) on a response, so an operator sees
 * with curl or the browser's developer tools which stage was slow: the wait
 * for a pool slot, the cache lookup, a theme fetch the request waited for,
 * the upstream's first byte, and theming. Sent when the site opts in
 * (`serverTiming: true`), to requests through `trustedProxies`, and to
 * holders of the admin token (`X-Livery-Token`, never forwarded upstream).
 *
 * The header is added when the response head is written, so every stage
 * measured by then is in it; a cache hit writes prebuilt headers, and Node
 * merges the one set here into them.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RequestContext } from './context.ts'

/** The request header carrying the admin token to ask for Server-Timing. */
export const timingTokenHeader = 'x-livery-token'

const dur = (ms: number): string => String(Math.round(ms * 1000) / 1000)

export function serverTimingValue (ctx: RequestContext, now = performance.now()): string {
  const parts: string[] = []
  if (ctx.queueWait > 0) parts.push(`queue;dur=${dur(ctx.queueWait)};desc="pool queue wait"`)
  if (ctx.themeWait !== undefined) parts.push(`theme-fetch;dur=${dur(ctx.themeWait)};desc="theme fetch waited for"`)
  if (ctx.cacheLookup !== undefined) parts.push(`cache;dur=${dur(ctx.cacheLookup)};desc="cache lookup (${ctx.cache})"`)
  if (ctx.upstreamTime !== undefined) parts.push(`upstream;dur=${dur(ctx.upstreamTime)};desc="upstream first byte"`)
  if (ctx.transform !== undefined) parts.push(`transform;dur=${dur(ctx.transform)};desc="theming"`)
  parts.push(`total;dur=${dur(now - ctx.started)};desc="to response headers"`)
  return parts.join(', ')
}

/** Adds the header when the head of `res` is written. */
export function addServerTiming (res: ServerResponse, ctx: RequestContext): void {
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse
  res.writeHead = ((...args: unknown[]) => {
    if (!res.headersSent) res.setHeader('server-timing', serverTimingValue(ctx))
    return writeHead(...args)
  }) as ServerResponse['writeHead']
}

/** Checks `X-Livery-Token` against the admin token in constant time; removes it so it never goes upstream. */
export function takeTimingToken (req: IncomingMessage, expected: Buffer | undefined): boolean {
  const presented = req.headers[timingTokenHeader]
  if (presented === undefined) return false
  delete req.headers[timingTokenHeader]
  if (expected === undefined || typeof presented !== 'string') return false
  return timingSafeEqual(tokenDigest(presented), expected)
}

export function tokenDigest (token: string): Buffer {
  return createHash('sha256').update(token).digest()
}
