/**
 * One site's upstream: a keep-alive undici Pool with the site's Varnish-style
 * timeouts (connect, first byte, between bytes), and the forwarding of one
 * request with both bodies streamed.
 */
import type { IncomingMessage } from 'node:http'
import { Pool, buildConnector, type Dispatcher } from 'undici'
import type { SiteConfig } from '../config/types.ts'
import { LiveryError, isLiveryError } from '../errors.ts'
import { upstreamRequestHeaders, type UpstreamTarget } from './headers.ts'
import type { ClientInfo } from './forwarded.ts'
import { upstreamError, upstreamMaxHeaderSize } from './upstream-errors.ts'
import { skippingContinue } from './interim.ts'

export interface UpstreamResponse {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: Dispatcher.ResponseData['body']
  /** Milliseconds from sending the request to the response headers. */
  readonly upstreamTime: number
}

export interface ForwardOptions {
  readonly method: string
  /** Path and query as sent upstream. */
  readonly path: string
  readonly headers: Record<string, string | string[] | undefined>
  /** The request body stream, or null when the request has none. */
  readonly body: IncomingMessage | null
  readonly signal: AbortSignal
  readonly context: ClientInfo
  /** Called for each `103 Early Hints` before the final response (other 1xx are dropped). */
  readonly onEarlyHints?: (headers: Record<string, string | string[]>) => void
  /** Given the time to the response headers (the request's context), so the caller needs no promise of its own for it. */
  readonly timing?: { upstreamTime: number | undefined }
}

export class Upstream {
  readonly site: SiteConfig
  readonly origin: string
  /** Response fields meant for this gateway alone, never sent to clients (lowercased). */
  readonly consumedFields: ReadonlySet<string>
  readonly #target: UpstreamTarget
  readonly #pool: Pool
  readonly #pathBase: string
  #framingErrors = 0
  #closing: Promise<void> | undefined
  #destroying: Promise<void> | undefined

  constructor (site: SiteConfig) {
    this.site = site
    const url = new URL(site.upstream)
    this.origin = url.origin
    this.consumedFields = new Set(['surrogate-control', ...(site.targetedField === '' ? [] : [site.targetedField.toLowerCase()])])
    this.#target = { upstreamHost: url.host, preserveHost: site.preserveHost }
    // An upstream URL with a path (http://cms/plone/site) prefixes every request.
    this.#pathBase = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '')
    this.#pool = new Pool(url.origin, {
      connections: site.connections,
      connect: skippingContinue(buildConnector({ timeout: site.timeouts.connect })),
      headersTimeout: site.timeouts.firstByte,
      bodyTimeout: site.timeouts.betweenBytes,
      keepAliveTimeout: 4_000,
      maxHeaderSize: upstreamMaxHeaderSize,
    })
    // Bytes after a response's Content-Length end reach undici's parser after
    // the response itself completed: as an unsolicited next response
    // (SocketError 'bad response', undici 8 client-h1 onMessageBegin) or a
    // parse error (HPE_*). The cache must not store such a response (issue 5).
    this.#pool.on('disconnect', (_origin: URL, _targets: unknown, err: Error) => {
      const code = String((err as { code?: unknown }).code)
      if (code.startsWith('HPE_') || (code === 'UND_ERR_SOCKET' && err.message === 'bad response')) this.#framingErrors++
    })
  }

  async forward (opts: ForwardOptions): Promise<UpstreamResponse> {
    const headers = upstreamRequestHeaders(opts.headers, opts.context, this.#target)
    const started = performance.now()
    try {
      const res = await this.#pool.request({
        origin: this.origin,
        path: this.#pathBase + opts.path,
        method: opts.method,
        headers: headers as Record<string, string | string[]>,
        body: opts.body,
        signal: opts.signal,
        onInfo: opts.onEarlyHints === undefined ? undefined : (info) => { if (info.statusCode === 103) opts.onEarlyHints!(info.headers) },
        // A response body is read by whoever streams it; nothing is buffered here.
        highWaterMark: 64 * 1024,
      })
      const upstreamTime = performance.now() - started
      if (opts.timing !== undefined) opts.timing.upstreamTime = upstreamTime
      return { status: res.statusCode, headers: res.headers, body: res.body, upstreamTime }
    } catch (err) {
      if (opts.signal.aborted) throw abortReason(opts.signal, err)
      throw upstreamError(err, this.site.upstream, this.site.timeouts, false)
    }
  }

  /**
   * Connections closed because the upstream sent bytes no response accounted
   * for (a body longer than its Content-Length). Compare readings taken
   * before a request and after `settled()` to know whether to trust a body.
   */
  get framingErrors (): number {
    return this.#framingErrors
  }

  /** Resolves once socket closes caused by bytes already received have been counted. */
  settled (): Promise<void> {
    // The parser error destroys the socket; its 'close' (and undici's
    // 'disconnect') come in a close-callbacks phase: two loop turns.
    return new Promise(resolve => { setImmediate(() => { setImmediate(resolve) }) })
  }

  /** Classifies a failure while the body streams (after the headers went out). */
  bodyError (err: unknown, signal?: AbortSignal): LiveryError {
    if (signal?.aborted === true) return abortReason(signal, err)
    return upstreamError(err, this.site.upstream, this.site.timeouts, true)
  }

  /** Idempotent; after destroy() it resolves at once (undici's close() would reject a destroyed pool). */
  close (): Promise<void> {
    this.#closing ??= this.#destroying ?? this.#pool.close()
    return this.#closing
  }

  destroy (err?: Error): Promise<void> {
    this.#destroying ??= this.#pool.destroy(err ?? null)
    return this.#destroying
  }
}

/** The abort reason when it is ours (deadline, kill, client gone), else a client-abort error. */
function abortReason (signal: AbortSignal, cause: unknown): LiveryError {
  const reason: unknown = signal.reason
  if (isLiveryError(reason)) return reason
  return new LiveryError('LIVERY_ERR_CLIENT_ABORTED', [], { cause })
}
