/**
 * Real servers on 127.0.0.1:0 for tests: an upstream (node:http or raw
 * `net`), and a Gateway in front of it with a captured log. Each starter
 * takes the tap test and registers its own teardown, so a test never leaks
 * a socket or a listener.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from 'undici'
import { parseConfig } from '../../src/config/load.ts'
import type { Config } from '../../src/config/types.ts'
import { Gateway } from '../../src/server/gateway.ts'
import { LogCapture } from './logs.ts'

/** The part of a tap `Test` the helpers use (teardown order is LIFO). */
export interface Teardown {
  teardown (fn: () => unknown): void
}

export interface Upstream {
  readonly server: Server
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** Closes the listener and every open connection; idempotent. */
  close (): Promise<void>
}

/** A node:http upstream answering with `handler`; closed at teardown. */
export async function startUpstream (t: Teardown, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Upstream> {
  const server = createServer(handler)
  return await listenHttp(t, server)
}

/** `backlog`: raise it for tests that open a burst of connections at once (Node's default is 511). */
export async function listenHttp (t: Teardown, server: Server, backlog?: number): Promise<Upstream> {
  await new Promise<void>(resolve => server.listen({ port: 0, host: '127.0.0.1', backlog }, resolve))
  const port = (server.address() as AddressInfo).port
  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= new Promise<void>(resolve => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
    return closing
  }
  t.teardown(close)
  return { server, port, url: `http://127.0.0.1:${port}`, close }
}

export interface RawUpstream {
  readonly server: NetServer
  readonly port: number
  readonly url: string
  /** Connections accepted so far. */
  readonly sockets: Set<Socket>
  close (): Promise<void>
}

/**
 * A raw TCP upstream for hostile or broken answers: `onConnection` gets each
 * socket and writes whatever bytes it likes. Sockets are destroyed at close.
 */
export async function startRawUpstream (t: Teardown, onConnection: (socket: Socket) => void): Promise<RawUpstream> {
  const sockets = new Set<Socket>()
  const server = createNetServer(socket => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    onConnection(socket)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= new Promise<void>(resolve => {
      server.close(() => resolve())
      for (const s of sockets) s.destroy()
    })
    return closing
  }
  t.teardown(close)
  return { server, port, url: `http://127.0.0.1:${port}`, sockets, close }
}

/** Reads one request head (up to the blank line) from a raw socket. */
export function readRequestHead (socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = ''
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('latin1')
      const end = buf.indexOf('\r\n\r\n')
      if (end !== -1) {
        socket.off('data', onData)
        socket.off('error', reject)
        resolve(buf.slice(0, end))
      }
    }
    socket.on('data', onData)
    socket.once('error', reject)
  })
}

export interface GatewayOptions {
  /** Upstream URL of the single default site (hosts `*`), unless `raw.sites` is given. */
  readonly upstream?: string
  /** Extra keys of the default site (`timeouts`, `preserveHost`, ...). */
  readonly site?: Record<string, unknown>
  /** Top-level config keys as YAML would give them; `sites` replaces the default site. */
  readonly raw?: Record<string, unknown>
  /** `LIVERY_*` overrides passed to parseConfig (never process.env). */
  readonly env?: NodeJS.ProcessEnv
}

export interface GatewayFixture {
  readonly gateway: Gateway
  readonly config: Config
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** Every log line (access log included) the gateway wrote, parsed. */
  readonly logs: LogCapture
  /** An undici Agent closed at teardown; pass it as `dispatcher`. */
  readonly agent: Agent
}

/**
 * Builds a config with `parseConfig(raw, env, tmpdir)` (a fresh temp dir as
 * cache directory), starts a Gateway on 127.0.0.1:0 with a captured logger
 * at level `debug`, and destroys it (and the agent, and the temp dir) at teardown.
 */
export async function startGateway (t: Teardown, opts: GatewayOptions = {}): Promise<GatewayFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'livery-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const config = parseConfig(gatewayRaw(opts, dir), opts.env ?? {}, dir)
  const logs = new LogCapture()
  const gateway = new Gateway(config, { logger: logs.logger })
  const address = await gateway.listen(0, '127.0.0.1')
  const agent = new Agent({ keepAliveTimeout: 1_000 })
  t.teardown(async () => {
    await agent.destroy()
    await gateway.destroy()
  })
  return { gateway, config, port: address.port, url: `http://127.0.0.1:${address.port}`, logs, agent }
}

/** The raw (YAML-shaped) config `startGateway` builds, for tests that start the gateway elsewhere. */
export function gatewayRaw (opts: GatewayOptions, cacheDir: string): Record<string, unknown> {
  const raw = opts.raw ?? {}
  const sites = raw.sites ?? [{ name: 'test', hosts: ['*'], upstream: opts.upstream ?? 'http://127.0.0.1:1', ...opts.site }]
  return {
    listen: { host: '127.0.0.1', port: 0 },
    log: { level: 'debug' },
    cache: { directory: cacheDir },
    ...raw,
    pool: withoutLagShedding(raw.pool),
    sites,
  }
}

/**
 * The `pool` keys of an in-process test gateway: the overload watchdog off
 * unless the test sets `maxEventLoopDelay`. The gateway shares its event
 * loop with the test's clients and upstreams, and on a busy machine that
 * loop stalls past the 1 s default on its own (at a load of 25), so a test
 * of something else got 503 LIVERY_ERR_OVERLOADED (issue 10). The watchdog
 * tests set the limit and create the stall they measure.
 */
export function withoutLagShedding (pool: unknown): Record<string, unknown> {
  return { maxEventLoopDelay: '0s', ...(pool as Record<string, unknown> | undefined) }
}
