/**
 * Pass mode: forward a request upstream and stream the answer back as it
 * arrives, bodies never buffered whole. Backpressure flows both ways
 * (undici reads the client's body as the upstream accepts it; the
 * response is piped into the client socket).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { pipeline } from 'node:stream/promises'
import { Transform } from 'node:stream'
import type { RequestContext } from '../server/context.ts'
import { clientResponseHeaders } from './headers.ts'
import type { Upstream, UpstreamResponse } from './upstream.ts'

export function requestHasBody (req: IncomingMessage): boolean {
  const cl = req.headers['content-length']
  return (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined
}

export function forwardRequest (upstream: Upstream, req: IncomingMessage, path: string, signal: AbortSignal, ctx: RequestContext): Promise<UpstreamResponse> {
  const socket = req.socket
  return upstream.forward({
    method: req.method ?? 'GET',
    path,
    headers: req.headers,
    body: requestHasBody(req) ? req : null,
    signal,
    context: {
      remoteAddress: socket.remoteAddress ?? '',
      proto: 'encrypted' in socket && socket.encrypted === true ? 'https' : 'http',
      host: req.headers.host ?? '',
    },
  }).then(res => {
    ctx.upstreamTime = res.upstreamTime
    return res
  })
}

/** Streams an upstream response to the client; rejects (after closing the client connection) when the upstream breaks mid-body. */
export async function streamResponse (upstream: Upstream, up: UpstreamResponse, res: ServerResponse, signal: AbortSignal, ctx: RequestContext, extraHeaders?: Record<string, string>): Promise<void> {
  const headers = clientResponseHeaders(up.headers)
  if (extraHeaders !== undefined) Object.assign(headers, extraHeaders)
  res.writeHead(up.status, headers)
  const counter = new Transform({
    transform (chunk: Buffer, _enc, cb) {
      ctx.bytes += chunk.length
      cb(null, chunk)
    },
  })
  try {
    await pipeline(up.body, counter, res)
  } catch (err) {
    res.destroy()
    throw upstream.bodyError(err, signal)
  }
}
