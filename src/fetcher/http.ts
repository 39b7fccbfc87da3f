/**
 * One HTTP exchange for a fetch job: a GET on the pool's own undici Agent
 * with only the pool's headers (plus validators from the stored copy),
 * streaming the body with a size cap, and mapping every transport failure to
 * a coded error. Connect, first-byte and between-bytes timeouts are the
 * Agent's; the total deadline arrives as `signal`.
 */
import { request, type Agent } from 'undici'
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib'
import { liveryError, wrapError, isLiveryError } from '../errors.ts'
import { channels, type TimeoutPhase } from './channels.ts'
import type { FetchedResource } from './types.ts'

export interface ExchangeLimits {
  readonly maxSize: number
  readonly timeouts: { readonly connect: number, readonly firstByte: number, readonly betweenBytes: number }
}

export type ExchangeResult =
  | { readonly kind: 'ok', readonly status: number, readonly headers: Record<string, string>, readonly body: Buffer }
  | { readonly kind: 'not-modified', readonly headers: Record<string, string> }
  | { readonly kind: 'bad-status', readonly status: number }

/** Headers that describe the connection or the message framing, not the resource (RFC 9110 §7.6.1), plus cookies, which a shared copy must not carry. */
const dropped = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'set-cookie'])

const baseHeaders = { accept: '*/*', 'accept-encoding': 'identity', 'user-agent': 'livery-fetcher' }

export async function exchange (agent: Agent, url: string, stored: FetchedResource | undefined, signal: AbortSignal, limits: ExchangeLimits): Promise<ExchangeResult> {
  const headers: Record<string, string> = { ...baseHeaders }
  if (stored !== undefined) {
    if (stored.headers.etag !== undefined) headers['if-none-match'] = stored.headers.etag
    if (stored.headers['last-modified'] !== undefined) headers['if-modified-since'] = stored.headers['last-modified']
  }
  let res: Awaited<ReturnType<typeof request>>
  try {
    res = await request(url, { dispatcher: agent, method: 'GET', headers, signal })
  } catch (err) {
    throw mapError(err, url, signal, limits)
  }
  const status = res.statusCode
  const resHeaders = flattenHeaders(res.headers)
  if (status === 304 && stored !== undefined) {
    await discard(res.body)
    return { kind: 'not-modified', headers: resHeaders }
  }
  if (status < 200 || status > 299) {
    await discard(res.body)
    return { kind: 'bad-status', status }
  }
  const declared = Number(resHeaders['content-length'])
  if (Number.isFinite(declared) && declared > limits.maxSize) {
    abandon(res.body)
    throw liveryError('LIVERY_ERR_FETCH_TOO_LARGE', url, `${limits.maxSize} bytes`)
  }
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of res.body) {
      const buf = chunk as Buffer
      size += buf.length
      if (size > limits.maxSize) {
        abandon(res.body)
        throw liveryError('LIVERY_ERR_FETCH_TOO_LARGE', url, `${limits.maxSize} bytes`)
      }
      chunks.push(buf)
    }
  } catch (err) {
    throw mapError(err, url, signal, limits)
  }
  const body = decode(Buffer.concat(chunks, size), resHeaders, url, limits.maxSize)
  return { kind: 'ok', status, headers: resHeaders, body }
}

/**
 * We ask for `identity`, but some servers compress anyway; decoding here
 * keeps the stored body usable by the theme engine. The cap applies to the
 * decoded size too, so a small bomb cannot become a huge buffer.
 */
function decode (raw: Buffer, headers: Record<string, string>, url: string, maxSize: number): Buffer {
  const encoding = headers['content-encoding']?.trim().toLowerCase()
  if (encoding === undefined || encoding === '' || encoding === 'identity') return raw
  const opts = { maxOutputLength: maxSize }
  let body: Buffer
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') body = gunzipSync(raw, opts)
    else if (encoding === 'deflate') body = inflateSync(raw, opts)
    else if (encoding === 'br') body = brotliDecompressSync(raw, opts)
    else throw new Error(`unsupported content-encoding ${encoding}`)
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') throw liveryError('LIVERY_ERR_FETCH_TOO_LARGE', url, `${maxSize} bytes`)
    throw wrapError('LIVERY_ERR_FETCH', err, url, err)
  }
  delete headers['content-encoding']
  headers['content-length'] = String(body.length)
  return body
}

function flattenHeaders (raw: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(raw)) {
    const key = name.toLowerCase()
    if (value === undefined || dropped.has(key)) continue
    out[key] = Array.isArray(value) ? value.join(', ') : value
  }
  return out
}

async function discard (body: { dump?: (opts?: { limit: number }) => Promise<void>, destroy: () => void }): Promise<void> {
  // A short error page can be drained to keep the connection; anything
  // longer is not worth reading, so the socket is dropped.
  try {
    if (body.dump !== undefined) await body.dump({ limit: 64 * 1024 })
    else body.destroy()
  } catch {
    // The exchange already failed or finished; a broken error-page body changes nothing.
  }
}

/** Drops a body we will not read; this closes its connection. */
function abandon (body: NodeJS.ReadableStream & { destroy: () => void }): void {
  // undici reports the destroy as an abort 'error' on the stream; we already
  // have the real failure (too large), so that echo is not worth an event.
  body.on('error', () => undefined)
  body.destroy()
}

function mapError (err: unknown, url: string, signal: AbortSignal, limits: ExchangeLimits): Error {
  if (isLiveryError(err)) return err
  if (signal.aborted) {
    const reason: unknown = signal.reason
    return isLiveryError(reason) ? reason : wrapError('LIVERY_ERR_FETCH', err, url, 'aborted')
  }
  const code = (err as { code?: unknown }).code
  const timeout = timeoutOf(code, limits)
  if (timeout !== undefined) {
    const [phase, detail] = timeout
    if (channels.timeout.hasSubscribers) channels.timeout.publish({ url, origin: originOf(url), phase })
    return wrapError('LIVERY_ERR_FETCH_TIMEOUT', err, url, detail)
  }
  return wrapError('LIVERY_ERR_FETCH', err, url, err)
}

function timeoutOf (code: unknown, limits: ExchangeLimits): [TimeoutPhase, string] | undefined {
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return ['connect', `no connection within ${limits.timeouts.connect} ms`]
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return ['firstByte', `no response headers within ${limits.timeouts.firstByte} ms`]
  if (code === 'UND_ERR_BODY_TIMEOUT') return ['betweenBytes', `no body bytes for ${limits.timeouts.betweenBytes} ms`]
  return undefined
}

export function originOf (url: string): string {
  return new URL(url).origin
}
