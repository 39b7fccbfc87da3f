/**
 * Shared pieces of the cache-tier acceptance tests (issue 6): a counting
 * upstream, an in-process Gateway built by `Gateway.create` (so every tier
 * in `config.cache` is real), gateways in child processes, a timed HTTP
 * client and a Redis client for looking at what reached the shared tier.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from '@redis/client'
import { Agent, request } from 'undici'
import { cacheKey } from '../../src/cache/key.ts'
import { parseConfig } from '../../src/config/load.ts'
import type { Config } from '../../src/config/types.ts'
import { Gateway } from '../../src/server/gateway.ts'
import { LogCapture } from '../helpers/logs.ts'
import { startUpstream, type Teardown, type Upstream } from '../helpers/servers.ts'

/** A route answers the n-th request for its path (n counts from 1). */
export type Route = (req: IncomingMessage, res: ServerResponse, n: number) => void

export interface CountingUpstream extends Upstream {
  /** Requests received for `path` (query ignored). */
  hits (path: string): number
  /** Responses for `path` fully written (the upstream side's 'finish'). */
  finished (path: string): number
}

export const cacheable = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'public, max-age=300' }

/** An upstream that counts requests per path; unknown paths get a cacheable `v<n> <path>` page. */
export async function countingUpstream (t: Teardown, routes: Record<string, Route> = {}): Promise<CountingUpstream> {
  const counts = new Map<string, number>()
  const done = new Map<string, number>()
  const up = await startUpstream(t, (req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const n = (counts.get(path) ?? 0) + 1
    counts.set(path, n)
    res.once('finish', () => done.set(path, (done.get(path) ?? 0) + 1))
    const route = routes[path]
    if (route !== undefined) { route(req, res, n); return }
    res.writeHead(200, cacheable).end(`v${n} ${path}`)
  })
  return Object.assign(up, { hits: (p: string) => counts.get(p) ?? 0, finished: (p: string) => done.get(p) ?? 0 })
}

export interface Reply {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
  readonly bytes: Buffer
  /** Wall time from sending to the last body byte, ms. */
  readonly ms: number
}

/** One request through `agent`; never throws for an HTTP status. */
export async function fetchTimed (agent: Agent, base: string, path: string, opts: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Reply> {
  const t0 = performance.now()
  const r = await request(base + path, { method: (opts.method ?? 'GET') as 'GET', headers: opts.headers, body: opts.body, dispatcher: agent })
  const bytes = Buffer.from(await r.body.arrayBuffer())
  return { status: r.statusCode, headers: r.headers, body: bytes.toString('utf8'), bytes, ms: performance.now() - t0 }
}

export function newAgent (t: Teardown): Agent {
  const agent = new Agent({ keepAliveTimeout: 1_000, connections: 32 })
  t.teardown(() => agent.destroy())
  return agent
}

/** A temp directory removed at teardown. */
export function tempDir (t: Teardown, label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `livery-${label}-`))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The Redis key of the page at `path` on `host` of the tierConfig site: the gateway's own key builder, prefixed. */
export function redisEntryKey (prefix: string, host: string, path: string, site = 'tiers'): string {
  return `${prefix}e:${cacheKey({ site, scheme: 'http', host, target: path, extra: '' })}`
}

/** The YAML-shaped config of one catch-all site in front of `upstream` (keys of `raw` win). */
export function tierConfig (upstream: string, dir: string, raw: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    log: { level: 'debug', access: false },
    ...raw,
    cache: { directory: dir, ...(raw.cache as Record<string, unknown> | undefined) },
    sites: raw.sites ?? [{ name: 'tiers', hosts: ['*'], upstream, grace: '0s' }],
  }
}

export interface RunningGateway {
  readonly gateway: Gateway
  readonly config: Config
  readonly url: string
  readonly logs: LogCapture
}

/**
 * `Gateway.create` (every configured tier) on 127.0.0.1:0. Destroyed at
 * teardown unless the test closed it first (a second close/destroy is a no-op).
 */
export async function startTierGateway (t: Teardown, raw: Record<string, unknown>, dir: string): Promise<RunningGateway> {
  const config = parseConfig(raw, {}, dir)
  const logs = new LogCapture()
  const gateway = await Gateway.create(config, { logger: logs.logger })
  t.teardown(() => gateway.destroy())
  const address = await gateway.listen(0, '127.0.0.1')
  return { gateway, config, url: `http://127.0.0.1:${address.port}`, logs }
}

export interface ChildGateway {
  readonly url: string
  readonly proc: ChildProcess
  /** Lines the child wrote to stderr (its log), for failure messages. */
  readonly stderr: () => string
  stop (): Promise<void>
}

const fixture = fileURLToPath(new URL('./fixtures/gateway.ts', import.meta.url))

/** A gateway in its own process (fixtures/gateway.ts), killed at teardown. */
export async function startChildGateway (t: Teardown, raw: Record<string, unknown>, dir: string): Promise<ChildGateway> {
  const proc = spawn(process.execPath, [fixture], {
    env: { ...process.env, LIVERY_TEST_GATEWAY_CONFIG: JSON.stringify(raw), LIVERY_TEST_GATEWAY_DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  proc.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-20_000) })
  const stop = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    const exited = once(proc, 'exit')
    proc.kill('SIGKILL')
    await exited
  }
  t.teardown(stop)
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`the gateway child did not start within 60 s: ${err}`)), 60_000)
    const onData = (d: Buffer): void => {
      out += d.toString()
      const m = /PORT (\d+)/.exec(out)
      if (m !== null) { clearTimeout(timer); proc.stdout!.off('data', onData); resolve(`http://127.0.0.1:${m[1]}`) }
    }
    proc.stdout!.on('data', onData)
    proc.once('exit', code => { clearTimeout(timer); reject(new Error(`the gateway child exited with ${String(code)}: ${err}`)) })
  })
  proc.stdout!.resume()
  return { url, proc, stderr: () => err, stop }
}

function plainClient (url: string) {
  return createClient({ url, socket: { reconnectStrategy: false } })
}

export type RedisClient = ReturnType<typeof plainClient>

/** A plain Redis client for inspecting the shared tier; closed at teardown. */
export async function redisClient (t: Teardown, url: string): Promise<RedisClient> {
  const c = plainClient(url)
  c.on('error', () => { /* a failure surfaces in the command that hit it */ })
  await c.connect()
  t.teardown(() => { c.destroy() })
  return c
}

/** True when `key` exists. */
export async function exists (c: RedisClient, key: string): Promise<boolean> {
  return Number(await c.sendCommand(['EXISTS', key])) === 1
}

/** Keys matching `pattern` (SCAN, never KEYS). */
export async function scanKeys (c: RedisClient, pattern: string): Promise<string[]> {
  const out: string[] = []
  let cursor = '0'
  do {
    const r = await c.sendCommand(['SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000']) as [string, string[]]
    cursor = String(r[0])
    out.push(...r[1])
  } while (cursor !== '0')
  return out
}

/** Polls `cond` every `every` ms until it holds; fails after `ms`. */
export async function until (cond: () => boolean | Promise<boolean>, ms = 20_000, what = 'condition', every = 20): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise<void>(resolve => { setTimeout(resolve, every).unref() })
  }
}
