/**
 * The access log (one line per request) and the per-request metrics, both
 * written once when the response ends or the client goes away. Two formats:
 * JSON through pino (the default), or the combined log format as
 * varnishncsa writes it by default, so existing log tools work:
 *
 *   %h %l %u %t "%r" %s %b "%{Referer}i" "%{User-agent}i"
 *
 * where %r is synthesised as varnishncsa does ("GET http://host/path?q HTTP/1.1").
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics/metrics.ts'
import type { RequestContext } from './context.ts'
import { accessLineWriter, type AccessValue } from './access-line.ts'
import { LineBuffer } from './line-buffer.ts'

export type AccessLogFormat = 'json' | 'combined'

export interface AccessLogOptions {
  /** true, false, or a sampling rate in [0, 1]. */
  readonly access: boolean | number
  /** @default 'json' */
  readonly format?: AccessLogFormat
  readonly logger: Logger
  /** Where combined lines go. @default process.stdout */
  readonly out?: NodeJS.WritableStream
  readonly metrics: Metrics
  /** Called for every request (before sampling), for the operator page's counts. */
  readonly observe?: (req: IncomingMessage, status: number, ctx: RequestContext) => void
}

export interface Finisher {
  (req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void
  /** Writes the access lines still buffered; lines after it are written one by one (a replaced or closed gateway's). */
  close (): void
}

/** The JSON access line's fields, in order (the values are built in the same order below). */
const accessFields: readonly string[] = [
  'type', 'method', 'host', 'path', 'query', 'status', 'bytes', 'duration', 'upstreamTime', 'queueWait',
  'cacheLookup', 'themeWait', 'transform', 'cache', 'site', 'client', 'userAgent', 'referer', 'completed', 'error',
]

const ms = (v: number | undefined): number | undefined => v === undefined ? undefined : Math.round(v * 1e3) / 1e3

function header (req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v.join(', ') : v
}

export function createFinisher (opts: AccessLogOptions): Finisher {
  const rate = opts.access === true ? 1 : opts.access === false ? 0 : opts.access
  const { logger, metrics } = opts
  const combined = opts.format === 'combined'
  // Lines are written in chunks, not one write(2) each (line-buffer.ts); the gateway flushes them at shutdown.
  const buffers: LineBuffer[] = []
  const buffered = (dest: { write (chunk: string): unknown }): LineBuffer => {
    const b = new LineBuffer(dest)
    buffers.push(b)
    return b
  }
  const out = combined ? buffered(opts.out ?? process.stdout) : undefined
  const line = rate === 0 || combined ? undefined : accessLineWriter(logger, accessFields, buffered)
  const finish = (req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void => {
    const seconds = (performance.now() - ctx.started) / 1000
    const status = res.headersSent ? res.statusCode : 0
    const method = req.method ?? 'GET'
    metrics.requests.record(ctx.site, method, status, ctx.cache, seconds, ctx.bytes)
    if (ctx.upstreamTime !== undefined) metrics.upstreamDuration.observe(ctx.upstreamTime / 1000, ctx.site)
    opts.observe?.(req, status, ctx)
    if (rate === 0 || (rate < 1 && Math.random() >= rate)) return
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    if (out !== undefined) {
      out.write(combinedLine(req, status, ctx, url) + '\n')
      return
    }
    const values: AccessValue[] = [
      'access', method, req.headers.host, ctx.path, q === -1 ? undefined : url.slice(q + 1), status, ctx.bytes,
      Math.round(seconds * 1e6) / 1e3, ms(ctx.upstreamTime), ctx.queueWait === 0 ? undefined : ms(ctx.queueWait),
      ms(ctx.cacheLookup), ms(ctx.themeWait), ms(ctx.transform), ctx.cache, ctx.site, ctx.client,
      header(req, 'user-agent'), header(req, 'referer'), res.writableFinished, ctx.error?.code,
    ]
    if (line !== undefined) line(values)
    else logger.info(Object.fromEntries(accessFields.map((name, i) => [name, values[i]]).filter(([, v]) => v !== undefined)), 'request')
  }
  return Object.assign(finish, { close: () => { for (const b of buffers) b.close() } })
}

const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const two = (n: number): string => n < 10 ? `0${n}` : String(n)

/** `[10/Oct/2000:13:55:36 +0000]`, in UTC. */
export function clfTime (date: Date): string {
  return `[${two(date.getUTCDate())}/${months[date.getUTCMonth()]}/${date.getUTCFullYear()}:${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} +0000]`
}

/** A header value inside quotes: quotes, backslashes and control characters escaped as Apache does. */
function quoted (value: string | undefined): string {
  if (value === undefined || value === '') return '"-"'
  return '"' + value.replace(/["\\\x00-\x1f\x7f]/g, c => c === '"' ? '\\"' : c === '\\' ? '\\\\' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`) + '"'
}

function remoteUser (req: IncomingMessage): string {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(req.headers.authorization ?? '')
  if (m === null) return '-'
  const user = Buffer.from(m[1], 'base64').toString('utf8').split(':')[0]
  return user === '' ? '-' : user.replace(/[\s"\\\x00-\x1f\x7f]/g, '_')
}

function combinedLine (req: IncomingMessage, status: number, ctx: RequestContext, url: string): string {
  const host = req.headers.host ?? '-'
  const target = url.startsWith('/') ? `http://${host}${url}` : url
  const requestLine = `${req.method ?? '-'} ${target} HTTP/${req.httpVersion}`
  return `${ctx.client ?? '-'} - ${remoteUser(req)} ${clfTime(new Date())} ${quoted(requestLine)} ${status} ${ctx.bytes > 0 ? ctx.bytes : '-'} ${quoted(header(req, 'referer'))} ${quoted(header(req, 'user-agent'))}`
}

/**
 * Counts the body bytes of a response written by a route that does not
 * count them itself (admin routes, theme assets): those are not the hot
 * path, so wrapping write/end on the one response is cheap enough.
 */
export function countBodyBytes (req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
  if (req.method === 'HEAD') return
  const size = (chunk: unknown, encoding: unknown): number =>
    typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? encoding as BufferEncoding : 'utf8')
      : chunk instanceof Uint8Array ? chunk.byteLength : 0
  const write = res.write.bind(res) as (...args: unknown[]) => boolean
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse
  res.write = ((...args: unknown[]) => {
    ctx.bytes += size(args[0], args[1])
    return write(...args)
  }) as ServerResponse['write']
  res.end = ((...args: unknown[]) => {
    if (typeof args[0] !== 'function') ctx.bytes += size(args[0], args[1])
    return end(...args)
  }) as ServerResponse['end']
}
