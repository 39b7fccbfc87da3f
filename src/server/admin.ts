/**
 * Admin routes under the configured prefix (default /_livery): healthz,
 * readyz, metrics, and whatever later modules register (purge, status).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Metrics } from '../metrics/metrics.ts'
import { isForwardingHeader } from '../proxy/forwarded.ts'

export type AdminRoute = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

/** A route for every path under a sub-prefix; `rest` is the part after it (with the query). */
export type AdminPrefixRoute = (req: IncomingMessage, res: ServerResponse, rest: string) => void | Promise<void>

/** A readiness check returns undefined when fine, else why not. */
export type ReadinessCheck = () => string | undefined

export interface AdminOptions {
  readonly prefix: string
  readonly metricsEnabled: boolean
  readonly metrics: Metrics
  /** Replaces the local registry's output (cluster mode aggregates over processes). */
  readonly metricsSource?: () => Promise<string>
}

export class AdminRoutes {
  readonly prefix: string
  readonly #routes = new Map<string, AdminRoute>()
  readonly #prefixRoutes: { readonly prefix: string, readonly route: AdminPrefixRoute }[] = []
  readonly #checks: ReadinessCheck[] = []

  constructor (opts: AdminOptions) {
    this.prefix = opts.prefix
    this.#routes.set('/healthz', (_req, res) => text(res, 200, 'ok\n'))
    this.#routes.set('/readyz', (_req, res) => {
      const problems = this.notReady()
      if (problems.length === 0) text(res, 200, 'ready\n')
      else text(res, 503, `not ready:\n${problems.map(p => `- ${p}\n`).join('')}`)
    })
    if (opts.metricsEnabled) {
      const source = opts.metricsSource ?? (() => opts.metrics.registry.metrics())
      this.addPrivate('/metrics', async (_req, res) => {
        const body = await source()
        res.writeHead(200, { 'content-type': opts.metrics.registry.contentType, 'cache-control': 'no-store' })
        res.end(body)
      })
    }
  }

  /** True when `path` is under the admin prefix. */
  owns (path: string): boolean {
    return path === this.prefix || (path.startsWith(this.prefix) && path.charCodeAt(this.prefix.length) === 47 /* / */)
  }

  add (name: string, route: AdminRoute): void {
    this.#routes.set(name, route)
  }

  /**
   * A route for the private side only (metrics, status): a request that came
   * through a proxy (Forwarded, X-Forwarded-*, X-Real-IP or Via) came from
   * outside, and gets 403, whoever the proxy is.
   */
  addPrivate (name: string, route: AdminRoute): void {
    this.#routes.set(name, (req, res) => {
      if (cameThroughProxy(req)) {
        text(res, 403, `${name.slice(1)}: not served to requests that came through a proxy (they carry Forwarded, X-Forwarded-*, X-Real-IP or Via)\n`)
        return
      }
      return route(req, res)
    })
  }

  /** Serves every path under `prefix` (e.g. `/theme/`). */
  addPrefix (prefix: string, route: AdminPrefixRoute): void {
    this.#prefixRoutes.push({ prefix, route })
  }

  addReadinessCheck (check: ReadinessCheck): void {
    this.#checks.push(check)
  }

  notReady (): string[] {
    const out: string[] = []
    for (const check of this.#checks) {
      const problem = check()
      if (problem !== undefined) out.push(problem)
    }
    return out
  }

  /** `path` is the request path under the admin prefix; `pathAndQuery` the same with its query, for prefix routes. */
  async handle (req: IncomingMessage, res: ServerResponse, path: string, pathAndQuery = path): Promise<void> {
    const sub = path.slice(this.prefix.length)
    const route = this.#routes.get(sub)
    if (route === undefined) {
      for (const p of this.#prefixRoutes) {
        if (sub.startsWith(p.prefix)) {
          await p.route(req, res, pathAndQuery.slice(this.prefix.length + p.prefix.length))
          return
        }
      }
      text(res, 404, `no admin route ${path}\n`)
      return
    }
    await route(req, res)
  }
}

function cameThroughProxy (req: IncomingMessage): boolean {
  const h = req.headers
  if (h.via !== undefined) return true
  for (const name in h) if (isForwardingHeader(name)) return true
  return false
}

export function text (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers })
  res.end(body)
}
