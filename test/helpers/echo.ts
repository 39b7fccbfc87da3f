/**
 * An echo upstream: answers every request with a JSON description of what
 * it received (method, path with query, headers, body), with the status
 * asked for in `x-want-status` and a few response headers to check on the
 * way back.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { startUpstream, type Teardown, type Upstream } from './servers.ts'

export interface Echo {
  readonly method: string
  readonly url: string
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
}

export interface EchoUpstream extends Upstream {
  /** Every request the upstream received, in order. */
  readonly received: Echo[]
}

export async function startEchoUpstream (t: Teardown): Promise<EchoUpstream> {
  const received: Echo[] = []
  const up = await startUpstream(t, (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const echo: Echo = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      received.push(echo)
      const body = JSON.stringify(echo)
      res.statusCode = Number(req.headers['x-want-status'] ?? 200)
      res.setHeader('content-type', 'application/json')
      res.setHeader('content-length', Buffer.byteLength(body))
      res.setHeader('x-echo-method', echo.method)
      res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/'])
      res.end(req.method === 'HEAD' ? undefined : body)
    })
  })
  return Object.assign(up, { received })
}
