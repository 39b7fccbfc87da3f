/**
 * The access log (one JSON line per request) and the per-request metrics,
 * both written once when the response ends or the client goes away.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics/metrics.ts'
import type { RequestContext } from './context.ts'

export interface AccessLogOptions {
  /** true, false, or a sampling rate in [0, 1]. */
  readonly access: boolean | number
  readonly logger: Logger
  readonly metrics: Metrics
}

export type Finisher = (req: IncomingMessage, res: ServerResponse, ctx: RequestContext) => void

export function createFinisher (opts: AccessLogOptions): Finisher {
  const rate = opts.access === true ? 1 : opts.access === false ? 0 : opts.access
  const { logger, metrics } = opts
  return (req, res, ctx) => {
    const seconds = (performance.now() - ctx.started) / 1000
    const status = res.headersSent ? res.statusCode : 0
    const method = req.method ?? 'GET'
    metrics.requests.record(ctx.site, method, status, ctx.cache, seconds)
    if (rate === 0 || (rate < 1 && Math.random() >= rate)) return
    logger.info({
      type: 'access',
      method,
      host: req.headers.host,
      path: ctx.path,
      status,
      bytes: ctx.bytes,
      duration: Math.round(seconds * 1e6) / 1e3,
      upstreamTime: ctx.upstreamTime === undefined ? undefined : Math.round(ctx.upstreamTime * 1e3) / 1e3,
      queueWait: ctx.queueWait === 0 ? undefined : Math.round(ctx.queueWait * 1e3) / 1e3,
      cache: ctx.cache,
      site: ctx.site,
      completed: res.writableFinished,
      error: ctx.error?.code,
    }, 'request')
  }
}
