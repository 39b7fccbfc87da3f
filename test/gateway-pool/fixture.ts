/**
 * Shared pieces of the request-pool acceptance tests: upstreams that hang
 * (and report their sockets closing), a client that records status, headers
 * and latency, and a metrics reader. The gateway itself comes from
 * test/helpers/servers.ts (`startGateway`), so every test runs the real
 * Gateway on 127.0.0.1:0.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { request, type Agent } from 'undici'
import { startUpstream, type Teardown, type Upstream } from '../helpers/servers.ts'

export interface Reply {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
  /** Milliseconds from sending to the end of the body. */
  readonly ms: number
}

/** GET `path` through the gateway with a Host header, reading the whole body. */
export async function get (agent: Agent, base: string, host: string, path: string): Promise<Reply> {
  const started = performance.now()
  const res = await request(`${base}${path}`, { dispatcher: agent, headers: { host } })
  const body = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body, ms: performance.now() - started }
}

/** A header's single value (undici gives arrays for repeated headers). */
export function header (reply: Reply, name: string): string | undefined {
  const v = reply.headers[name]
  return Array.isArray(v) ? v[0] : v
}

export interface HangingUpstream extends Upstream {
  /** Requests received so far (they are never answered unless a route says so). */
  readonly received: IncomingMessage[]
  /** Sockets the upstream accepted that are still open. */
  readonly open: Set<Socket>
  /** Sockets that were opened and then closed (by the gateway aborting, or at the end). */
  closed (): number
  /** Resolves once `n` requests have arrived. */
  untilReceived (n: number): Promise<void>
  /** Resolves once no accepted socket is open any more. */
  untilAllClosed (): Promise<void>
}

/**
 * An upstream that accepts requests and never answers them, except paths for
 * which `answer` returns true after writing a response itself.
 */
export async function startHangingUpstream (t: Teardown, answer?: (req: IncomingMessage, res: ServerResponse) => boolean): Promise<HangingUpstream> {
  const received: IncomingMessage[] = []
  const open = new Set<Socket>()
  let closed = 0
  const waiters = new Set<() => void>()
  const notify = (): void => { for (const w of [...waiters]) w() }
  const up = await startUpstream(t, (req, res) => {
    if (answer?.(req, res) === true) return
    received.push(req)
    notify()
  })
  up.server.on('connection', (socket: Socket) => {
    open.add(socket)
    socket.on('close', () => {
      open.delete(socket)
      closed++
      notify()
    })
  })
  const until = (cond: () => boolean): Promise<void> => new Promise(resolve => {
    if (cond()) { resolve(); return }
    const check = (): void => {
      if (!cond()) return
      waiters.delete(check)
      resolve()
    }
    waiters.add(check)
  })
  return Object.assign(up, {
    received,
    open,
    closed: () => closed,
    untilReceived: (n: number) => until(() => received.length >= n),
    untilAllClosed: () => until(() => open.size === 0),
  })
}

/** The value of one Prometheus sample (sum over label sets that contain every given label). */
export function metricValue (text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line)
    if (m === null || m[1] !== name) continue
    const set = m[2] ?? ''
    if (!Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) continue
    sum += Number(m[3])
  }
  return sum
}

/** Resolves with the next message on a diagnostics channel that passes `match`. */
export function nextMessage<T> (name: string, match: (m: T) => boolean = () => true): Promise<T> {
  return new Promise<T>(resolve => {
    const onMessage = (message: unknown): void => {
      if (!match(message as T)) return
      unsubscribe(name, onMessage)
      resolve(message as T)
    }
    subscribe(name, onMessage)
  })
}

/** Counts replies by `status code`, e.g. `{ '503 LIVERY_ERR_QUEUE_FULL': 50 }`. */
export function tally (replies: readonly Reply[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of replies) {
    const key = `${r.status} ${header(r, 'x-livery-error') ?? ''}`.trim()
    out[key] = (out[key] ?? 0) + 1
  }
  return out
}
