/**
 * Pass mode: forward a request upstream and stream the answer back as it
 * arrives, bodies never buffered whole. Backpressure flows both ways
 * (undici reads the client's body as the upstream accepts it; the
 * response is piped into the client socket).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RequestContext } from '../server/context.ts'
import { clientResponseHeaders, stripHopByHop } from './headers.ts'
import { LiveryError } from '../errors.ts'
import type { Upstream, UpstreamResponse } from './upstream.ts'

export function requestHasBody (req: IncomingMessage): boolean {
  const cl = req.headers['content-length']
  return (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined
}

export { clientInfo, type ClientInfo } from './forwarded.ts'

/**
 * Forwards the upstream's 103 Early Hints to `res` while the final response
 * is not written yet. Never to an HTTP/1.0 client (RFC 9110 §15.2), and only
 * hints with a Link field (all Node sends, and all browsers use).
 */
export function earlyHintsTo (req: IncomingMessage, res: ServerResponse): ((headers: Record<string, string | string[]>) => void) | undefined {
  if (req.httpVersionMajor < 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor < 1)) return undefined
  return (headers) => {
    if (res.headersSent || res.destroyed) return
    const hints = stripHopByHop(headers)
    if (hints.link === undefined) return
    try {
      res.writeEarlyHints(hints)
    } catch { /* a Link value Node refuses to write: a hint is only a hint */ }
  }
}

/** Reads a body up to `max` bytes; `complete` is false when it broke off or overflowed. */
export async function collectBody (body: AsyncIterable<Buffer>, max: number): Promise<{ chunks: Buffer[], size: number, complete: boolean }> {
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of body) {
      size += chunk.length
      if (size > max) return { chunks, size, complete: false }
      chunks.push(chunk)
    }
  } catch {
    return { chunks, size, complete: false }
  }
  return { chunks, size, complete: true }
}

/** Where a streamed body is also captured, for the cache. */
export interface Capture {
  readonly max: number
  readonly chunks: Buffer[]
  size: number
  /** False once the body overflowed `max` or broke off. */
  complete: boolean
}

export function newCapture (max: number): Capture {
  return { max, chunks: [], size: 0, complete: true }
}

/**
 * Streams an upstream response to the client, optionally capturing the body
 * for the cache (up to `capture.max`); rejects (after closing the client
 * connection) when the upstream breaks mid-body.
 *
 * A pump on the body's own events, as `pipe()` does, rather than `for await`:
 * the async iterator cost a promise and a microtask turn per chunk, and
 * pipeline() with a counting Transform cost more than the bytes on a 60 KB
 * page (bench/proxy, bench/compare). Backpressure: the body pauses while the
 * client's socket is full and resumes on its `drain`.
 */
export function streamResponse (upstream: Upstream, up: UpstreamResponse, res: ServerResponse, signal: AbortSignal, ctx: RequestContext, extraHeaders?: Record<string, string>, capture?: Capture): Promise<void> {
  const headers = clientResponseHeaders(up.headers, upstream.consumedFields)
  if (extraHeaders !== undefined) Object.assign(headers, extraHeaders)
  res.writeHead(up.status, headers)
  const body = up.body
  return new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      ctx.bytes += chunk.length
      if (capture !== undefined && capture.complete) {
        capture.size += chunk.length
        if (capture.size > capture.max) {
          capture.complete = false
          capture.chunks.length = 0
        } else capture.chunks.push(chunk)
      }
      if (!res.write(chunk)) body.pause()
    }
    const onDrain = (): void => { body.resume() }
    let settled = false
    // The error listener stays: undici's body reports a destroy before its end as an error, which must not go unheard.
    const done = (): boolean => {
      if (settled) return false
      settled = true
      body.off('data', onData)
      body.off('end', onEnd)
      res.off('drain', onDrain)
      res.off('close', onClose)
      return true
    }
    const onEnd = (): void => {
      if (!done()) return
      res.end()
      resolve()
    }
    const fail = (err: unknown): void => {
      if (!done()) return
      if (capture !== undefined) capture.complete = false
      res.destroy()
      // The body's own error says which side failed; an abort of ours (client gone, deadline) is reported as such.
      reject(upstream.bodyError(err, signal))
    }
    const onError = (err: Error): void => { fail(err) }
    // The client went away before the body ended: stop reading the upstream.
    const onClose = (): void => {
      body.destroy()
      fail(new LiveryError('LIVERY_ERR_CLIENT_ABORTED'))
    }
    body.on('data', onData)
    body.on('end', onEnd)
    body.on('error', onError)
    res.on('drain', onDrain)
    res.on('close', onClose)
  })
}
