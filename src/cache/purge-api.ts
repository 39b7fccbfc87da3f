/**
 * The purge API (DESIGN §4): `POST <admin.prefix>/purge` with a bearer token
 * and a JSON body `{ "urls": [], "prefixes": [], "tags": [], "site": "",
 * "all": false, "soft": false }`, and the `PURGE` method on a URL (soft with
 * the `Soft-Purge: 1` request header). Both answer `{ "purged": N, "soft": b }`.
 *
 * Failures answer `{ "error": code, "message": text }`:
 * 401 missing or wrong token; 403 no token configured (purging is off);
 * 405 another method; 413 body over 1 MiB; 400 malformed JSON, unknown
 * fields, wrong types, an empty selector; a failed purge answers the error's
 * own status (e.g. 500 LIVERY_ERR_CACHE_STORE when a tier was unreachable).
 *
 * The token is compared in constant time: both sides are hashed to SHA-256
 * first, so `timingSafeEqual` gets equal lengths and the comparison leaks
 * neither the token nor its length.
 *
 * Metrics (node:diagnostics_channel):
 * - `livery:cache:purge` `{ selector, soft, purged, via }` — a purge ran
 *   (`via`: 'api' or 'method').
 * - `livery:cache:purge_denied` `{ reason, remote }` — a request without a
 *   valid token (or with purging off).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { channel } from 'node:diagnostics_channel'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { isLiveryError, liveryError, type LiveryError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { silentLogger } from '../log.ts'
import type { PurgeSelector } from './store.ts'
import type { PurgeReport } from './tiered-store.ts'

const purgeChannel = channel('livery:cache:purge')
const deniedChannel = channel('livery:cache:purge_denied')

/** Largest accepted request body. */
export const MAX_PURGE_BODY = 1024 * 1024

export interface PurgeRouteOptions {
  /** `admin.token` (or `LIVERY_ADMIN_TOKEN`); '' turns purging off. */
  readonly token: string
  /**
   * Applies a purge; resolves the count affected, or (TieredStore.purgeReport)
   * the count and which other processes and instances acknowledged it.
   * `warm`: the body asked for the named URLs to be fetched again (the worker tier's warm jobs).
   */
  readonly purge: (selector: PurgeSelector, opts: { soft: boolean, warm?: boolean }) => Promise<number | PurgeReport>
  readonly logger?: Logger
  /** @default MAX_PURGE_BODY (1 MiB) */
  readonly maxBody?: number
  /**
   * True when the PURGE/BAN method request comes from an allowed address
   * (`admin.purgeFrom`, Varnish's `acl purge`): no token needed. The POST
   * API always needs the token.
   */
  readonly allowMethod?: (req: IncomingMessage) => boolean
}

export interface PurgeRoute {
  /** Handles `POST <prefix>/purge`. */
  (req: IncomingMessage, res: ServerResponse): Promise<void>
  /**
   * Handles the `PURGE` (or `BAN`) method on `url` (absolute, as cache
   * entries store it) of `site`; `selector` replaces the one-URL purge.
   */
  handlePurgeMethod (req: IncomingMessage, res: ServerResponse, url: string, site: string, selector?: PurgeSelector): Promise<void>
}

const fields = new Set(['urls', 'prefixes', 'tags', 'site', 'all', 'soft', 'warm'])

export function createPurgeRoute (opts: PurgeRouteOptions): PurgeRoute {
  const log = opts.logger ?? silentLogger
  const maxBody = opts.maxBody ?? MAX_PURGE_BODY
  // Hashed once: the request path only hashes the presented token.
  const expected = opts.token === '' ? undefined : digest(opts.token)

  function authorize (req: IncomingMessage, method = false): LiveryError | undefined {
    if (method && opts.allowMethod?.(req) === true) return undefined
    let reason: string | undefined
    let err: LiveryError | undefined
    if (expected === undefined) {
      reason = 'disabled'
      err = liveryError('LIVERY_ERR_FORBIDDEN', 'purging is disabled: no admin token is configured (set admin.token or LIVERY_ADMIN_TOKEN)')
    } else {
      const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '')
      if (m === null) {
        reason = 'missing'
        err = liveryError('LIVERY_ERR_UNAUTHORIZED', 'a purge needs the header "Authorization: Bearer <admin token>"')
      } else if (!timingSafeEqual(digest(m[1]), expected)) {
        reason = 'wrong'
        err = liveryError('LIVERY_ERR_UNAUTHORIZED', 'the admin token is wrong')
      }
    }
    if (err !== undefined) {
      if (deniedChannel.hasSubscribers) deniedChannel.publish({ reason, remote: req.socket.remoteAddress })
      log.warn({ reason, remote: req.socket.remoteAddress }, 'purge refused')
    }
    return err
  }

  async function run (res: ServerResponse, sel: PurgeSelector, soft: boolean, via: string, warm = false): Promise<void> {
    let purged: number
    let report: PurgeReport | undefined
    try {
      const r = await opts.purge(sel, { soft, warm })
      if (typeof r === 'number') purged = r
      else { report = r; purged = r.purged }
    } catch (err) {
      log.error({ err, selector: sel, soft }, 'purge failed')
      sendError(res, isLiveryError(err) ? err : liveryError('LIVERY_ERR_CACHE_STORE', 'purge', err instanceof Error ? err.message : String(err)))
      return
    }
    if (purgeChannel.hasSubscribers) purgeChannel.publish({ selector: sel, soft, purged, via })
    if (report === undefined || !report.peers) {
      log.info({ selector: sel, soft, purged, via }, 'purged')
      send(res, 200, { purged, soft })
      return
    }
    // Acknowledged: every live process and instance applied it before this
    // answer, except those listed as missing (their copies may still be served).
    const missing = report.missing
    if (missing.length > 0) log.warn({ selector: sel, soft, purged, via, acknowledged: report.acked.length, missing }, 'purged, but not every member acknowledged it')
    else log.info({ selector: sel, soft, purged, via, acknowledged: report.acked.length }, 'purged')
    send(res, 200, { purged, soft, acknowledged: report.acked.length, missing })
  }

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST')
      drain(req, res)
      sendError(res, liveryError('LIVERY_ERR_PURGE_METHOD', 'POST', req.method ?? '?'))
      return
    }
    const denied = authorize(req)
    if (denied !== undefined) { drain(req, res); sendError(res, denied); return }
    let body: Buffer
    try {
      body = await readBody(req, maxBody)
    } catch (err) {
      drain(req, res)
      sendError(res, isLiveryError(err) ? err : liveryError('LIVERY_ERR_PURGE_REQUEST', `cannot read the body: ${String(err)}`))
      return
    }
    let parsed: { sel: PurgeSelector, soft: boolean, warm: boolean }
    try {
      parsed = parseBody(body)
    } catch (err) {
      sendError(res, isLiveryError(err) ? err : liveryError('LIVERY_ERR_PURGE_REQUEST', String(err)))
      return
    }
    await run(res, parsed.sel, parsed.soft, 'api', parsed.warm)
  }

  const handlePurgeMethod = async (req: IncomingMessage, res: ServerResponse, url: string, site: string, selector?: PurgeSelector): Promise<void> => {
    drain(req, res)
    const denied = authorize(req, true)
    if (denied !== undefined) { sendError(res, denied); return }
    const soft = req.headers['soft-purge'] === '1'
    log.debug({ url, site, method: req.method }, 'purge by method')
    await run(res, selector ?? { urls: [url] }, soft, 'method')
  }

  return Object.assign(route, { handlePurgeMethod })
}

function digest (s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/**
 * Reads up to `limit` bytes. A declared or actual larger body fails with
 * 413 at once instead of being buffered.
 */
async function readBody (req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = liveryError('LIVERY_ERR_PURGE_TOO_LARGE', limit)
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > limit) throw tooLarge
  // Listeners, not for-await: leaving a for-await destroys the socket, and
  // the 413 answer still has to go out on it.
  return await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let n = 0
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
    }
    const onData = (chunk: Buffer): void => {
      n += chunk.length
      if (n > limit) { cleanup(); reject(tooLarge); return }
      chunks.push(chunk)
    }
    const onEnd = (): void => { cleanup(); resolve(Buffer.concat(chunks, n)) }
    const onError = (err: Error): void => { cleanup(); reject(err) }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
  })
}

/** Validates the body against the documented shape; every message names the field. */
export function parseBody (body: Buffer): { sel: PurgeSelector, soft: boolean, warm: boolean } {
  const bad = (msg: string): LiveryError => liveryError('LIVERY_ERR_PURGE_REQUEST', msg)
  let v: unknown
  try {
    v = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw bad(`the body is not valid JSON (${err instanceof Error ? err.message : String(err)})`)
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('the body must be a JSON object like {"urls": [], "prefixes": [], "tags": [], "site": "", "all": false, "soft": false}')
  const o = v as Record<string, unknown>
  for (const k of Object.keys(o)) {
    if (!fields.has(k)) throw bad(`unknown field "${k}"; allowed: ${[...fields].join(', ')}`)
  }
  const list = (name: string, absolute: boolean): string[] => {
    const x = o[name]
    if (x === undefined) return []
    if (!Array.isArray(x)) throw bad(`"${name}" must be an array of strings`)
    x.forEach((s, i) => {
      if (typeof s !== 'string' || s === '') throw bad(`"${name}[${i}]" must be a non-empty string`)
      if (absolute && !URL.canParse(s)) throw bad(`"${name}[${i}]" must be an absolute URL like https://example.com/path, got ${JSON.stringify(s)}`)
    })
    return x as string[]
  }
  const flag = (name: string): boolean => {
    const x = o[name]
    if (x === undefined) return false
    if (typeof x !== 'boolean') throw bad(`"${name}" must be true or false`)
    return x
  }
  const urls = list('urls', true)
  const prefixes = list('prefixes', true)
  const tags = list('tags', false)
  if (o.site !== undefined && typeof o.site !== 'string') throw bad('"site" must be a string (a site name)')
  const site = (o.site as string | undefined) ?? ''
  const all = flag('all')
  const soft = flag('soft')
  const warm = flag('warm')
  if (!all && urls.length === 0 && prefixes.length === 0 && tags.length === 0 && site === '') {
    throw bad('the selector is empty: give urls, prefixes, tags, a site, or "all": true')
  }
  const sel: PurgeSelector = all ? { all: true } : { urls, prefixes, tags, ...(site === '' ? {} : { site }) }
  return { sel, soft, warm }
}

/** Stops reading a body we will not use; the connection closes after the answer. */
function drain (req: IncomingMessage, res: ServerResponse): void {
  if (req.complete) return
  res.shouldKeepAlive = false
  req.resume()
}

function sendError (res: ServerResponse, err: LiveryError): void {
  if (err.status === 401) res.setHeader('www-authenticate', 'Bearer')
  send(res, err.status, { error: err.code, message: err.message })
}

function send (res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) { res.end(); return }
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}
