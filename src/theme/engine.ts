/**
 * ThemeEngine: the gateway's handle on theming. Loads rules and themes
 * through a ResourceLoader, compiles once per theme version, decides which
 * responses pass through, and themes the rest.
 */
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { promisify } from 'node:util'
import { channel } from 'node:diagnostics_channel'
import zlib from 'node:zlib'
import { liveryError } from '../errors.ts'
import { silentLogger, type Logger } from '../log.ts'
import { decodeHtml } from './charset.ts'
import { compile, type Compiled, type ThemeFailure, type ThemeInput } from './compile.ts'
import type { ResourceLoader } from './loader.ts'
import { parseRules, toUrl, type RuleSet } from './rules.ts'
import { transformCompiled, type EncodedOutcome, type TransformContext, type TransformOutcome } from './transform.ts'

export interface ThemeEngineOptions {
  /** Path or URL of the Diazo rules file. */
  readonly rulesFile: string
  /** Theme-relative URLs are rewritten onto this prefix. @default none (left unchanged, as Diazo does) */
  readonly absolutePrefix?: string
  /** Base for relative `<theme href>`. @default the rules file's location */
  readonly themeBase?: string
  /** Values for `$name` in `if` expressions; the names are the declared parameters. */
  readonly params?: Readonly<Record<string, string>>
  readonly loader: ResourceLoader
  readonly logger?: Logger
  /** Smallest output compressed for clients that accept it, in bytes. @default 1024 */
  readonly compressThreshold?: number
  /** After a failed theme load, apply() retries at most this often, in ms. @default 5000 */
  readonly retryInterval?: number
  /**
   * Runs the pure transform; the gateway passes one that sends large pages to
   * the worker tier. May reject (e.g. LIVERY_ERR_TRANSFORM_TIMEOUT): apply() then rejects too.
   * @default transformCompiled on this thread
   */
  readonly transform?: TransformRunner
}

/** Runs `transformCompiled` somewhere: this thread, or a worker thread (which may answer with the page encoded). */
export type TransformRunner = (compiled: Compiled, contentHtml: string, ctx: TransformContext) =>
  TransformOutcome | EncodedOutcome | Promise<TransformOutcome | EncodedOutcome>

export type ThemeResult =
  | { kind: 'themed', body: Buffer, headers: Record<string, string>, themeVersion: string }
  | { kind: 'notheme' }
  | { kind: 'unavailable', reason: string }

export interface ThemeStats { themed: number, notheme: number, unavailable: number, loads: number, version: string }

const chLoad = channel('livery:theme:load')
const chApply = channel('livery:theme:apply')
const chUnavailable = channel('livery:theme:unavailable')

const gunzip = promisify(zlib.gunzip)
const inflate = promisify(zlib.inflate)
const inflateRaw = promisify(zlib.inflateRaw)
const brotliDecompress = promisify(zlib.brotliDecompress)
const gzip = promisify(zlib.gzip)
const brotliCompress = promisify(zlib.brotliCompress)

const htmlTypes = /^\s*(text\/html|application\/xhtml\+xml)\s*(;|$)/i
const themeableEncodings = new Set(['', 'identity', 'gzip', 'x-gzip', 'br', 'deflate'])

function first (v: string | string[] | undefined): string | undefined { return Array.isArray(v) ? v[0] : v }

/** The encoding to send, from Accept-Encoding: br, then gzip, honouring q=0. */
export function pickEncoding (accept: string | undefined): 'br' | 'gzip' | null {
  if (accept === undefined) return null
  const q = new Map<string, number>()
  for (const part of accept.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';')
    const qp = params.find(p => p.trim().startsWith('q='))
    q.set(name.trim(), qp === undefined ? 1 : Number(qp.trim().slice(2)) || 0)
  }
  const ok = (n: string): boolean => (q.get(n) ?? (q.has('*') ? q.get('*') as number : 0)) > 0
  return ok('br') ? 'br' : ok('gzip') ? 'gzip' : null
}

export async function decodeBody (body: Buffer, encoding: string | undefined): Promise<Buffer> {
  switch ((encoding ?? '').trim().toLowerCase()) {
    case '': case 'identity': return body
    case 'gzip': case 'x-gzip': return await gunzip(body)
    case 'br': return await brotliDecompress(body)
    case 'deflate':
      // RFC 9110 says zlib-wrapped, but some servers send raw deflate.
      try { return await inflate(body) } catch { return await inflateRaw(body) }
    default: throw new Error(`unsupported content-encoding ${encoding}`)
  }
}

export class ThemeEngine {
  readonly #opts: ThemeEngineOptions
  readonly #log: Logger
  #compiled: Compiled | null = null
  #rules: RuleSet | null = null
  #themeVersions: string[] = []
  #version = ''
  #closed = false
  #loading: Promise<void> | null = null
  #lastRetry = 0
  readonly #stats = { themed: 0, notheme: 0, unavailable: 0, loads: 0 }

  constructor (opts: ThemeEngineOptions) {
    if (typeof opts.rulesFile !== 'string' || opts.rulesFile === '') throw new TypeError('ThemeEngine: rulesFile must be a path or URL')
    if (typeof opts.loader !== 'function') throw new TypeError('ThemeEngine: loader must be a function')
    this.#opts = opts
    this.#log = (opts.logger ?? silentLogger).child({ module: 'theme' })
  }

  /** Version of rules + current themes: part of the cache key of themed pages. */
  get version (): string { return this.#version }

  /** The compiled template (plain data) for worker threads; null before load(). */
  get compiled (): Compiled | null { return this.#compiled }

  stats (): ThemeStats { return { ...this.#stats, version: this.#version } }

  /** Loads rules and themes and compiles. Rejects with LIVERY_ERR_RULES/SELECTOR; an unreachable theme only marks it unavailable. */
  load (): Promise<void> {
    if (this.#closed) return Promise.reject(liveryError('LIVERY_ERR_CLOSED', 'theme engine'))
    this.#loading ??= this.#load().finally(() => { this.#loading = null })
    return this.#loading
  }

  async #load (): Promise<void> {
    const started = performance.now()
    const loader = this.#opts.loader
    const rulesUrl = toUrl(this.#opts.rulesFile)
    const rs = await parseRules(rulesUrl, async url => (await loader(url)).body.toString('utf8'), {
      params: Object.keys(this.#opts.params ?? {}),
      themeBase: this.#opts.themeBase === undefined ? undefined : toUrl(this.#opts.themeBase)
    })
    const themes = await Promise.all(rs.themes.map(async (t): Promise<(ThemeInput | ThemeFailure) & { version: string }> => {
      try {
        const r = await loader(t.href)
        return { html: decodeHtml(r.body, r.contentType), version: r.version }
      } catch (err) {
        const reason = (err as Error).message
        this.#log.warn({ theme: t.href, err: reason }, 'theme is unavailable; pages are served unthemed')
        chUnavailable.publish({ href: t.href, reason })
        return { error: reason, version: 'unavailable' }
      }
    }))
    const rulesHash = createHash('sha1')
    for (const f of rs.files) rulesHash.update(f.url).update('\0').update(f.text).update('\0')
    const themeVersions = themes.map(t => t.version)
    rulesHash.update(JSON.stringify([this.#opts.absolutePrefix ?? '', this.#opts.params ?? {}, themeVersions]))
    const version = rulesHash.digest('hex').slice(0, 16)
    if (this.#compiled !== null && version === this.#version) return
    this.#compiled = compile(rs, themes, { absolutePrefix: this.#opts.absolutePrefix, version })
    this.#rules = rs
    this.#themeVersions = themeVersions
    this.#version = version
    this.#stats.loads++
    chLoad.publish({ version, themes: rs.themes.length, rules: rs.rules.length, durationMs: performance.now() - started })
  }

  /** The Diazo pass-through rules: false means send the upstream response unchanged. */
  shouldTheme (req: { method: string, url: string, headers: IncomingHttpHeaders }, res: { status: number, headers: IncomingHttpHeaders }): boolean {
    if (req.method !== 'GET' && req.method !== 'POST') return false
    const s = res.status
    if ((s >= 300 && s < 400) || s === 204 || s === 304 || s === 401 || s < 200) return false
    if (!htmlTypes.test(first(res.headers['content-type']) ?? '')) return false
    if (first(res.headers['content-length']) === '0') return false
    if (!themeableEncodings.has((first(res.headers['content-encoding']) ?? '').trim().toLowerCase())) return false
    if ((first(res.headers['x-livery-theme']) ?? '').trim().toLowerCase() === 'off') return false
    // plone.app.theming's own switch, so Plone add-ons that set it keep working.
    if (first(res.headers['x-theme-disabled']) !== undefined) return false
    if ((first(req.headers['x-requested-with']) ?? '').toLowerCase() === 'xmlhttprequest') return false
    const q = req.url.indexOf('?')
    if (q >= 0) {
      const v = new URLSearchParams(req.url.slice(q + 1)).get('ajax_load')
      if (v !== null && v !== '' && v !== '0' && v.toLowerCase() !== 'false') return false
    }
    return true
  }

  /** Themes one page. Never throws for bad HTML. */
  async apply (input: { url: string, headers: IncomingHttpHeaders, requestHeaders: IncomingHttpHeaders, body: Buffer, signal?: AbortSignal }): Promise<ThemeResult> {
    if (this.#closed) throw liveryError('LIVERY_ERR_CLOSED', 'theme engine')
    const started = performance.now()
    const result = await this.#apply(input)
    this.#stats[result.kind]++
    chApply.publish({ url: input.url, outcome: result.kind, durationMs: performance.now() - started })
    return result
  }

  async #apply (input: { url: string, headers: IncomingHttpHeaders, requestHeaders: IncomingHttpHeaders, body: Buffer, signal?: AbortSignal }): Promise<ThemeResult> {
    if (this.#compiled === null || this.#compiled.themes.some(t => t.segs === null)) await this.#retry()
    const c = this.#compiled
    if (c === null) return { kind: 'unavailable', reason: 'the theme has not been loaded' }
    let raw: Buffer
    try { raw = await decodeBody(input.body, first(input.headers['content-encoding'])) } catch (err) {
      this.#log.warn({ url: input.url, err: (err as Error).message }, 'cannot decode the content body; serving it unthemed')
      return { kind: 'notheme' }
    }
    if (raw.length === 0) return { kind: 'notheme' }
    const html = decodeHtml(raw, first(input.headers['content-type']))
    const url = new URL(input.url)
    const hrefBodies = await this.#fetchHrefs(c, url, input.signal)
    const out = await (this.#opts.transform ?? transformCompiled)(c, html, {
      path: url.pathname,
      params: { ...this.#opts.params, url: url.href, base: url.href, scheme: url.protocol.slice(0, -1), host: url.host },
      hrefBodies
    })
    if (out.kind !== 'html' && out.kind !== 'encoded') return out
    let body = out.kind === 'encoded' ? Buffer.from(out.body.buffer, out.body.byteOffset, out.body.byteLength) : Buffer.from(out.html, 'utf8')
    const validator = first(input.headers.etag) ?? first(input.headers['last-modified']) ?? createHash('sha1').update(input.body).digest('base64url')
    const tag = createHash('sha1').update(validator).update('\0').update(c.version).digest('base64url').slice(0, 22)
    const headers: Record<string, string> = { 'content-type': 'text/html; charset=utf-8', vary: 'Accept-Encoding' }
    const enc = body.length >= (this.#opts.compressThreshold ?? 1024) ? pickEncoding(first(input.requestHeaders['accept-encoding'])) : null
    if (enc !== null) {
      body = enc === 'br'
        ? await brotliCompress(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length } })
        : await gzip(body, { level: 6 })
      headers['content-encoding'] = enc
    }
    headers.etag = `W/"lt-${tag}${enc === null ? '' : '-' + enc}"`
    headers['content-length'] = String(body.length)
    return { kind: 'themed', body, headers, themeVersion: c.version }
  }

  /** Href documents for one request, keyed as the compiled rules name them; failures leave a gap (the rule matches nothing). */
  async #fetchHrefs (c: Compiled, contentUrl: URL, signal?: AbortSignal): Promise<Record<string, string>> {
    const out: Record<string, string> = {}
    if (c.hrefs.length === 0) return out
    await Promise.all(c.hrefs.map(async href => {
      const abs = href.startsWith('/') ? new URL(href, contentUrl).href : href
      try {
        const r = await this.#opts.loader(abs, signal)
        out[href] = decodeHtml(r.body, r.contentType)
      } catch (err) {
        this.#log.warn({ href: abs, err: (err as Error).message }, 'href content is unavailable')
      }
    }))
    return out
  }

  /** Re-tries loading after a failure, at most once per retryInterval, so a theme server that comes up later is picked up. */
  async #retry (): Promise<void> {
    const now = Date.now()
    if (now - this.#lastRetry < (this.#opts.retryInterval ?? 5000)) return
    this.#lastRetry = now
    try { await this.load() } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'reloading the theme failed')
    }
  }

  /** Names the theme versions loaded, for diagnostics. */
  describe (): { version: string, themes: Array<{ href: string, version: string, available: boolean }> } {
    const rs = this.#rules
    return {
      version: this.#version,
      themes: rs === null ? [] : rs.themes.map((t, i) => ({ href: t.href, version: this.#themeVersions[i] ?? '', available: this.#compiled?.themes[i]?.segs != null }))
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#loading?.catch(() => {
      // A load racing close has already been reported to its own caller.
    })
  }

  async destroy (_err?: Error): Promise<void> { this.#closed = true }

  async [Symbol.asyncDispose] (): Promise<void> { await this.close() }
}
