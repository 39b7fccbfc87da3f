/**
 * The operator page under the admin prefix (`/_livery/`), as HAProxy's stats
 * page: the sites with their request rate, hit ratio and status mix, theme
 * versions and state, the fetch pool's jobs and circuits, the request pool's
 * queues, Redis, the recent errors, and a purge form. Plain server-rendered
 * HTML with a meta refresh: no JavaScript at all, so it works in any browser
 * and through `curl`. It is a private route (refused through a load
 * balancer, like /metrics); the purge form needs the admin token.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { PurgeSelector } from '../cache/index.ts'
import type { Logger } from '../log.ts'
import { text, type AdminRoutes } from './admin.ts'

/** Per-site request counts for the page, kept by the finisher (one Map lookup per request). */
export class SiteTraffic {
  readonly #sites = new Map<string, { requests: number, hits: number, status: [number, number, number, number, number] }>()
  readonly #limit: number
  #last: { at: number, totals: Map<string, number> } = { at: performance.now(), totals: new Map() }

  /** `limit` bounds the distinct site labels (sites come from the config; '-' for unrouted requests). */
  constructor (limit = 1000) {
    this.#limit = limit
  }

  record (site: string, status: number, cache: string): void {
    let s = this.#sites.get(site)
    if (s === undefined) {
      if (this.#sites.size >= this.#limit) return
      s = { requests: 0, hits: 0, status: [0, 0, 0, 0, 0] }
      this.#sites.set(site, s)
    }
    s.requests++
    if (cache === 'HIT' || cache === 'STALE' || cache === 'UPDATING') s.hits++
    const cls = Math.floor(status / 100)
    s.status[cls >= 1 && cls <= 5 ? cls - 1 : 4]++
  }

  /** Counts since start, and the request rate since the previous snapshot (the previous page view). */
  snapshot (now = performance.now()): Map<string, { requests: number, hits: number, status: readonly number[], rate: number }> {
    const seconds = Math.max(0.001, (now - this.#last.at) / 1000)
    const out = new Map<string, { requests: number, hits: number, status: readonly number[], rate: number }>()
    const totals = new Map<string, number>()
    for (const [site, s] of this.#sites) {
      out.set(site, { requests: s.requests, hits: s.hits, status: [...s.status], rate: (s.requests - (this.#last.totals.get(site) ?? 0)) / seconds })
      totals.set(site, s.requests)
    }
    this.#last = { at: now, totals }
    return out
  }
}

export interface RecentError {
  readonly time: string
  readonly site: string
  readonly method: string
  readonly path: string
  readonly status: number
  readonly code: string
  readonly message: string
}

/** The last errors, newest first; a bounded ring. */
export class RecentErrors {
  readonly #items: RecentError[] = []
  readonly #max: number
  constructor (max = 50) { this.#max = max }
  add (e: RecentError): void {
    this.#items.unshift(e)
    if (this.#items.length > this.#max) this.#items.length = this.#max
  }
  list (): readonly RecentError[] { return this.#items }
}

export interface OperatorView {
  readonly version: string
  readonly pid: number
  readonly uptime: number
  readonly prefix: string
  readonly ready: readonly string[]
  readonly sites: readonly {
    readonly name: string
    readonly hosts: readonly string[]
    readonly upstream: string
    readonly inFlight: number
    readonly queued: number
    readonly traffic: { requests: number, hits: number, status: readonly number[], rate: number } | undefined
    readonly theme: { version: string, themes: readonly { href: string, version: string, available: boolean }[] } | undefined
  }[]
  readonly fetch: { readonly jobsInFlight: number, readonly jobsQueued: number, readonly circuits: Readonly<Record<string, string>> }
  readonly redis: string | undefined
  readonly errors: readonly RecentError[]
  /** Set after a purge from the form. */
  readonly notice?: string
}

const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
const pct = (n: number, d: number): string => d === 0 ? '–' : `${(100 * n / d).toFixed(1)} %`

function themeState (theme: OperatorView['sites'][number]['theme']): { text: string, cls: string } {
  if (theme === undefined) return { text: 'no theme', cls: '' }
  if (theme.themes.length === 0) return { text: 'loading', cls: 'warn' }
  return theme.themes.every(t => t.available) ? { text: 'available', cls: 'ok' } : { text: 'unavailable', cls: 'bad' }
}

export function renderOperatorPage (v: OperatorView): string {
  const siteRows = v.sites.map(s => {
    const tr = s.traffic
    const st = themeState(s.theme)
    const mix = tr === undefined ? '–' : tr.status.map((n, i) => `<span class="s${i + 1}">${i + 1}xx ${n}</span>`).join(' ')
    return `<tr data-site="${esc(s.name)}"><th scope="row">${esc(s.name)}</th><td>${esc(s.hosts.join(', '))}</td><td>${esc(s.upstream)}</td>` +
      `<td class="num">${tr === undefined ? '0' : tr.rate.toFixed(2)}</td><td class="num">${tr?.requests ?? 0}</td><td class="num hit-ratio">${pct(tr?.hits ?? 0, tr?.requests ?? 0)}</td>` +
      `<td>${mix}</td><td class="num">${s.inFlight}</td><td class="num">${s.queued}</td>` +
      `<td class="${st.cls}">${esc(st.text)}${s.theme === undefined ? '' : ` <code>${esc(s.theme.version.slice(0, 12))}</code>`}</td></tr>`
  }).join('\n')
  const themeRows = v.sites.flatMap(s => (s.theme?.themes ?? []).map(t =>
    `<tr><td>${esc(s.name)}</td><td>${esc(t.href)}</td><td><code>${esc(t.version.slice(0, 16))}</code></td><td class="${t.available ? 'ok' : 'bad'}">${t.available ? 'available' : 'unavailable'}</td></tr>`)).join('\n')
  const circuits = Object.entries(v.fetch.circuits)
  const circuitRows = circuits.map(([origin, state]) => `<tr><td>${esc(origin)}</td><td class="${state === 'closed' ? 'ok' : 'bad'}">${esc(state)}</td></tr>`).join('\n')
  const errorRows = v.errors.map(e => `<tr><td>${esc(e.time)}</td><td>${esc(e.site)}</td><td>${esc(e.method)} ${esc(e.path)}</td><td class="num">${e.status}</td><td><code>${esc(e.code)}</code></td><td>${esc(e.message)}</td></tr>`).join('\n')
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Livery ${esc(v.version)} · operator page</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="10">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
thead th{background:#f0f0f0}.num{text-align:right}.ok{color:#116611}.warn{color:#8a5a00}.bad{color:#b00020;font-weight:bold}
.s5{color:#b00020}.s4{color:#8a5a00}code{font-size:.9em}form p{margin:.3em 0}
</style></head>
<body>
<h1>Livery ${esc(v.version)}</h1>
<p>pid ${v.pid} · up ${v.uptime} s · <span id="readiness" class="${v.ready.length === 0 ? 'ok' : 'bad'}">${v.ready.length === 0 ? 'ready' : `not ready: ${esc(v.ready.join('; '))}`}</span>
 · Redis: <span id="redis" class="${v.redis === undefined ? '' : v.redis === 'up' ? 'ok' : 'bad'}">${esc(v.redis ?? 'not configured')}</span>
 · <a href="${esc(v.prefix)}/metrics">metrics</a> · <a href="${esc(v.prefix)}/status">status (JSON)</a></p>
${v.notice === undefined ? '' : `<p id="notice"><strong>${esc(v.notice)}</strong></p>`}
<h2>Sites</h2>
<table id="sites"><thead><tr><th>site</th><th>hosts</th><th>upstream</th><th>req/s</th><th>requests</th><th>hit ratio</th><th>status mix</th><th>in flight</th><th>queued</th><th>theme</th></tr></thead>
<tbody>
${siteRows}
</tbody></table>
<h2>Themes</h2>
${themeRows === '' ? '<p>No themed site.</p>' : `<table id="themes"><thead><tr><th>site</th><th>theme</th><th>version</th><th>state</th></tr></thead><tbody>\n${themeRows}\n</tbody></table>`}
<h2>Fetch pool</h2>
<p id="fetch">${v.fetch.jobsInFlight} jobs running, ${v.fetch.jobsQueued} queued</p>
${circuits.length === 0 ? '<p>No origin fetched yet.</p>' : `<table id="circuits"><thead><tr><th>origin</th><th>circuit</th></tr></thead><tbody>\n${circuitRows}\n</tbody></table>`}
<h2>Recent errors</h2>
${errorRows === '' ? '<p id="no-errors">None since start.</p>' : `<table id="errors"><thead><tr><th>time</th><th>site</th><th>request</th><th>status</th><th>code</th><th>message</th></tr></thead><tbody>\n${errorRows}\n</tbody></table>`}
<h2>Purge</h2>
<form id="purge" method="post" action="${esc(v.prefix)}/ops/purge">
<p><label>What <select name="kind"><option value="url">URL</option><option value="prefix">URL prefix</option><option value="tag">tag</option><option value="site">site</option><option value="all">everything</option></select></label>
<label>Value <input name="value" size="60" placeholder="https://www.example.org/news/"></label></p>
<p><label><input type="checkbox" name="soft" value="1"> soft (serve stale while refreshing)</label></p>
<p><label>Admin token <input type="password" name="token" autocomplete="off" required></label> <button type="submit">Purge</button></p>
</form>
</body></html>
`
}

export function sendHtml (res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
    // Nothing on the page loads from elsewhere or runs script.
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    'x-frame-options': 'DENY',
  })
  res.end(html)
}

export interface OperatorRoutesOptions {
  readonly prefix: string
  /** The page's data, read per view. */
  readonly view: () => Omit<OperatorView, 'notice' | 'prefix'>
  /** True when `token` is the admin token (constant time); false when none is configured. */
  readonly tokenMatches: (token: string) => boolean
  readonly tokenConfigured: () => boolean
  readonly purge: (selector: PurgeSelector, soft: boolean) => Promise<number>
  readonly logger: Logger
}

/** Registers `<prefix>/` (the page) and `<prefix>/ops/purge` (the form's target) as private admin routes. */
export function addOperatorRoutes (admin: AdminRoutes, opts: OperatorRoutesOptions): void {
  const page = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') { text(res, 405, 'the operator page answers GET\n', { allow: 'GET, HEAD' }); return }
    const q = new URL(req.url ?? '/', 'http://x').searchParams
    const purged = q.get('purged')
    const notice = purged !== null && /^\d+$/.test(purged) ? `Purged ${purged} ${purged === '1' ? 'entry' : 'entries'}.` : undefined
    sendHtml(res, 200, renderOperatorPage({ ...opts.view(), prefix: opts.prefix, notice }))
  }
  admin.addPrivate('/', page)
  admin.addPrivate('', (_req, res) => { res.writeHead(301, { location: `${opts.prefix}/`, 'content-length': 0 }).end() })
  admin.addPrivate('/ops/purge', async (req, res) => {
    if (req.method !== 'POST') { text(res, 405, 'the purge form posts\n', { allow: 'POST' }); return }
    let form: URLSearchParams
    try {
      form = new URLSearchParams((await readSmallBody(req, 16 * 1024)).toString('utf8'))
    } catch {
      text(res, 413, 'the form is larger than 16 KB\n')
      return
    }
    if (!opts.tokenConfigured()) { text(res, 403, 'purging is disabled: no admin token is configured (set admin.token or LIVERY_ADMIN_TOKEN)\n'); return }
    if (!opts.tokenMatches(form.get('token') ?? '')) {
      opts.logger.warn({ remote: req.socket.remoteAddress }, 'operator page purge refused: wrong token')
      text(res, 401, 'the admin token is wrong\n')
      return
    }
    const value = (form.get('value') ?? '').trim()
    const kind = form.get('kind') ?? 'url'
    const selectors: Record<string, () => PurgeSelector | undefined> = {
      url: () => URL.canParse(value) ? { urls: [value] } : undefined,
      prefix: () => URL.canParse(value) ? { prefixes: [value] } : undefined,
      tag: () => value === '' ? undefined : { tags: [value] },
      site: () => value === '' ? undefined : { site: value },
      all: () => ({ all: true }),
    }
    const selector = selectors[kind]?.()
    if (selector === undefined) { text(res, 400, `purge: "${value}" is not a valid ${kind} (URLs are absolute, like https://www.example.org/news)\n`); return }
    const soft = form.get('soft') === '1'
    const purged = await opts.purge(selector, soft)
    opts.logger.info({ selector, soft, purged, via: 'operator page' }, 'purged')
    // Post/redirect/get: the page's refresh must not send the purge again.
    res.writeHead(303, { location: `${opts.prefix}/?purged=${purged}`, 'content-length': 0, 'cache-control': 'no-store' }).end()
  })
}

function readSmallBody (req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let n = 0
    req.on('data', (c: Buffer) => {
      n += c.length
      if (n > limit) { req.resume(); reject(new Error('too large')); return }
      chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}
