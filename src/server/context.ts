/**
 * Per-request state carried down the request path and read once by the
 * access log and metrics when the response ends.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { isLiveryError, type LiveryError } from '../errors.ts'

export type CacheStatus = 'HIT' | 'MISS' | 'STALE' | 'UPDATING' | 'REVALIDATED' | 'BYPASS'

export interface RequestContext {
  readonly started: number
  /** Path without the query, for routing and logs. */
  readonly path: string
  site: string
  cache: CacheStatus
  /** Milliseconds to the upstream's response headers, when it was asked. */
  upstreamTime: number | undefined
  /** Milliseconds spent waiting for a pool slot. */
  queueWait: number
  /** Milliseconds the theme version took to become known (a theme fetch the request waited for). */
  themeWait: number | undefined
  /** Milliseconds of the cache lookup. */
  cacheLookup: number | undefined
  /** Milliseconds of theming the page (the fetch of href subrequests included). */
  transform: number | undefined
  /** Body bytes sent to the client. */
  bytes: number
  /** The client's address (through trusted proxies, when the server knows them); else the socket's peer is logged. */
  client: string | undefined
  /** The failure that ended the request, for the log. */
  error: LiveryError | undefined
}

/** `started`: when the request came in (performance.now()), if it was read already. */
export function newContext (path: string, started = performance.now()): RequestContext {
  return { started, path, site: '-', cache: 'BYPASS', upstreamTime: undefined, queueWait: 0, bytes: 0, client: undefined, themeWait: undefined, cacheLookup: undefined, transform: undefined, error: undefined }
}

/** Statuses whose answer tells the client to come back later. */
const retryAfterSeconds = 1

/**
 * The one place a failure becomes an HTTP answer (STYLE §2.4). Once headers
 * are out, the only honest thing left is to close the connection so the
 * client never takes a truncated body for a complete one.
 */
export function sendError (req: IncomingMessage, res: ServerResponse, ctx: RequestContext, err: unknown): void {
  const coded = isLiveryError(err) ? err : undefined
  ctx.error = coded
  if (res.headersSent || res.destroyed) {
    res.destroy()
    return
  }
  const status = coded?.status ?? 500
  if (status === 499) { // client gone: nobody to answer
    res.destroy()
    return
  }
  const message = coded === undefined ? 'internal error' : coded.message
  const body = `${status} ${statusText(status)}\n${message}\n`
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-cache': ctx.cache,
  }
  if (status === 503) headers['retry-after'] = retryAfterSeconds
  if (coded !== undefined) headers['x-livery-error'] = coded.code
  res.writeHead(status, headers)
  res.end(req.method === 'HEAD' ? undefined : body)
  ctx.bytes += req.method === 'HEAD' ? 0 : Buffer.byteLength(body)
}

function statusText (status: number): string {
  switch (status) {
    case 400: return 'Bad Request'
    case 401: return 'Unauthorized'
    case 403: return 'Forbidden'
    case 404: return 'Not Found'
    case 405: return 'Method Not Allowed'
    case 502: return 'Bad Gateway'
    case 503: return 'Service Unavailable'
    case 504: return 'Gateway Timeout'
    default: return 'Error'
  }
}
