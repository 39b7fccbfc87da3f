/**
 * One site's request path: pool → cache → upstream → theme → response.
 * Built once per site at start-up; `handle` only assembles.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { SiteConfig } from '../config/types.ts'
import type { Logger } from '../log.ts'
import { Upstream } from '../proxy/upstream.ts'
import { forwardRequest, streamResponse } from '../proxy/pass.ts'
import { LiveryError } from '../errors.ts'
import { sendError, type RequestContext } from './context.ts'

export interface SiteHandlerOptions {
  readonly logger: Logger
}

export class SiteHandler {
  readonly site: SiteConfig
  readonly upstream: Upstream
  readonly #logger: Logger

  constructor (site: SiteConfig, opts: SiteHandlerOptions) {
    this.site = site
    this.upstream = new Upstream(site)
    this.#logger = opts.logger.child({ site: site.name })
  }

  async handle (req: IncomingMessage, res: ServerResponse, ctx: RequestContext, pathAndQuery: string): Promise<void> {
    ctx.site = this.site.name
    const ac = new AbortController()
    const onClose = (): void => {
      if (!res.writableFinished) ac.abort(new LiveryError('LIVERY_ERR_CLIENT_ABORTED'))
    }
    res.once('close', onClose)
    try {
      const up = await forwardRequest(this.upstream, req, pathAndQuery, ac.signal, ctx)
      await streamResponse(this.upstream, up, res, ac.signal, ctx, { 'x-cache': ctx.cache })
    } catch (err) {
      this.#logFailure(err)
      sendError(req, res, ctx, err)
    } finally {
      res.off('close', onClose)
    }
  }

  #logFailure (err: unknown): void {
    const e = err as LiveryError
    if (e.code === 'LIVERY_ERR_CLIENT_ABORTED') return
    this.#logger.warn({ upstream: this.site.upstream, code: e.code, cause: (e.cause as Error | undefined)?.message }, e.message)
  }

  close (): Promise<void> {
    return this.upstream.close()
  }

  destroy (): Promise<void> {
    return this.upstream.destroy()
  }
}
