/**
 * Livery's own HTTP-caching conformance probe, written from the RFC text
 * (RFC 9111, RFC 9110 §13/§14, RFC 5861, RFC 9213): the real Gateway on
 * defaults (one site, `hosts: ["*"]`, no theme) in front of a scripted
 * origin. Every check uses its own path, so checks never see each other's
 * entries; the origin answers each path from a script given the n-th request.
 *
 * Entries are made stale with the origin's own `Age` (no sleeping): an
 * `Age` equal to `max-age` is stale on arrival.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { cacheFixture, type CacheFixture, type Reply, type Route } from '../gateway-cache/fixture.ts'
import type { Teardown } from '../helpers/servers.ts'

export interface Scripted {
  readonly status?: number
  readonly headers?: Record<string, string | string[] | undefined>
  readonly body?: string
}

/** Answers the n-th request (from 1) for one path. */
export type Script = (n: number, req: IncomingHttpHeaders, method: string) => Scripted

export interface Probe {
  readonly f: CacheFixture
  /** Registers a path's script; returns the path. */
  route (path: string, script: Script): string
  get (path: string, headers?: Record<string, string>, method?: string): Promise<Reply>
  /** Requests the origin received for a path. */
  hits (path: string): number
  /** The request headers the origin received, in order. */
  seen (path: string): IncomingHttpHeaders[]
  /** Two GETs; resolves the second reply (the first is discarded once stored). */
  twice (path: string, second?: Record<string, string>): Promise<Reply>
}

export const plain = { 'content-type': 'text/plain' }

/** An HTTP-date `s` seconds from now (negative: in the past). */
export function httpDate (s: number): string {
  return new Date(Date.now() + s * 1000).toUTCString()
}

export async function probe (t: Teardown, site: Record<string, unknown> = {}): Promise<Probe> {
  const routes: Record<string, Route> = {}
  const seen = new Map<string, IncomingHttpHeaders[]>()
  const f = await cacheFixture(t, routes, { site })
  const p: Probe = {
    f,
    route (path, script) {
      const bare = path.split('?')[0]
      routes[bare] = (req, res, n) => {
        const list = seen.get(bare) ?? []
        list.push(req.headers)
        seen.set(bare, list)
        const s = script(n, req.headers, req.method ?? 'GET')
        const headers: Record<string, string | string[]> = { ...plain }
        for (const [k, v] of Object.entries(s.headers ?? {})) if (v !== undefined) headers[k] = v
        res.writeHead(s.status ?? 200, headers)
        res.end(s.body ?? (s.status === 204 || s.status === 304 ? undefined : `${bare} #${n}`))
      }
      return path
    },
    get: (path, headers, method) => f.get(path, headers, method),
    hits: (path) => f.hits(path.split('?')[0]),
    seen: (path) => seen.get(path.split('?')[0]) ?? [],
    async twice (path, second = {}) {
      // No wait between the two: until the first fill has committed (or refused)
      // its entry, the second request queues on the waiting list for it.
      await f.get(path)
      return f.get(path, second)
    },
  }
  return p
}
