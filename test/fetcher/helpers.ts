/**
 * Shared fixtures for the fetch pool tests: a loopback HTTP server whose
 * behaviour each test sets, a fake clock, a short-duration config and a pool
 * that is destroyed at teardown.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { mkdtempSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { FetchConfig } from '../../src/config/types.ts'
import { FetchPool, type FetchPoolOptions } from '../../src/fetcher/index.ts'

/** The subset of a tap `Test` the helpers use. */
export interface TestLike {
  teardown (fn: () => unknown): void
}

/**
 * A temp directory removed at teardown. Not `t.testdir()`: tap removes that
 * before teardowns run, racing the pool's last disk writes. Teardowns run
 * last-in first-out, so a directory made before a pool outlives the pool.
 */
export function tempDir (t: TestLike): string {
  const dir = mkdtempSync(join(tmpdir(), 'livery-fetch-test-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void

export interface TestServer {
  readonly origin: string
  url (path: string): string
  /** Replaces the behaviour for the next requests. */
  handle (h: Handler): void
  /** Every request seen, in order. */
  readonly requests: IncomingMessage[]
  /** Resolves once the server has seen `n` requests in total. */
  requestCount (n: number): Promise<void>
  /** 'connection' events seen. */
  connections: number
  /** Most connections open at the same time. */
  maxOpen: number
  close (): Promise<void>
}

export async function startServer (t: TestLike, initial: Handler): Promise<TestServer> {
  let handler = initial
  const sockets = new Set<Socket>()
  const requests: IncomingMessage[] = []
  const waiters: Array<{ n: number, resolve: () => void }> = []
  const server = createServer((req, res) => {
    requests.push(req)
    handler(req, res)
    for (const w of waiters.filter(w => requests.length >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1)
      w.resolve()
    }
  })
  // Keep-alive on the server side long enough not to interfere with the pool's own reuse.
  server.keepAliveTimeout = 10_000
  const state: TestServer = {
    origin: '',
    url: path => `${state.origin}${path}`,
    handle: h => { handler = h },
    requests,
    requestCount: n => requests.length >= n ? Promise.resolve() : new Promise(resolve => { waiters.push({ n, resolve }) }),
    connections: 0,
    maxOpen: 0,
    close: async () => {
      for (const s of sockets) s.destroy()
      if (server.listening) await new Promise<void>(resolve => server.close(() => resolve()))
    },
  }
  server.on('connection', socket => {
    state.connections++
    sockets.add(socket)
    state.maxOpen = Math.max(state.maxOpen, sockets.size)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no address')
  ;(state as { origin: string }).origin = `http://127.0.0.1:${addr.port}`
  t.teardown(() => state.close())
  return state
}

/** Answers 200 with `body` and extra headers. */
export function ok (body: string | (() => string), headers: Record<string, string> = {}): Handler {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', ...headers })
    res.end(typeof body === 'function' ? body() : body)
  }
}

/** Accepts the request and never answers (sockets are destroyed at teardown). */
export const hang: Handler = () => {}

/**
 * A fetch config for tests. `wait` and `missWait` default to safety nets: a
 * fetch from a healthy loopback server can outlast 100 ms on a busy machine
 * (issue 10), and a test that expects `fetched` or `refreshed` must not get
 * `stale` or LIVERY_ERR_FETCH_WAIT for it. Tests of the waits set them.
 */
export function config (overrides: Partial<FetchConfig> = {}): FetchConfig {
  return {
    concurrency: 4,
    ttl: 1000,
    minTtl: 500,
    staleWhileRevalidate: 60_000,
    staleIfError: 120_000,
    wait: 30_000,
    missWait: 30_000,
    maxSize: 1024 * 1024,
    timeouts: { connect: 1000, firstByte: 5000, betweenBytes: 5000, total: 10_000 },
    circuit: { failures: 3, coolDown: 1000, maxCoolDown: 4000 },
    ...overrides,
  }
}

export interface FakeClock {
  now: () => number
  advance (ms: number): void
}

export function fakeClock (start = 1_700_000_000_000): FakeClock {
  let current = start
  return { now: () => current, advance: ms => { current += ms } }
}

export function makePool (t: TestLike, cfg: FetchConfig, opts: Partial<FetchPoolOptions> = {}): FetchPool {
  const pool = new FetchPool(cfg, { directory: opts.directory ?? tempDir(t), ...opts })
  t.teardown(() => pool.destroy())
  return pool
}

/** Collects messages published on a diagnostics channel for the rest of the test. */
export function collect (t: TestLike, name: string): unknown[] {
  const seen: unknown[] = []
  const fn = (msg: unknown): void => { seen.push(msg) }
  subscribe(name, fn)
  t.teardown(() => unsubscribe(name, fn))
  return seen
}

/** Resolves with the next message on a channel. */
export function next (name: string): Promise<unknown> {
  return new Promise(resolve => {
    const fn = (msg: unknown): void => {
      unsubscribe(name, fn)
      resolve(msg)
    }
    subscribe(name, fn)
  })
}

/**
 * How late a plain timer of `ms` fires right now: on a shared, loaded machine
 * the process itself can be starved, and no library can beat that. Tests add
 * the measured lateness to their bounds so they check the pool, not the box.
 */
export function timerLateness (ms: number): Promise<number> {
  const start = performance.now()
  return new Promise(resolve => setTimeout(() => resolve(Math.max(0, performance.now() - start - ms)), ms))
}

export { settlesWithin } from '../helpers/order.ts'

/** Runs `fn` and returns its settled result with the elapsed real time. */
export async function timed<T> (fn: () => Promise<T>): Promise<{ ms: number, value?: T, error?: unknown }> {
  const start = performance.now()
  try {
    const value = await fn()
    return { ms: performance.now() - start, value }
  } catch (error) {
    return { ms: performance.now() - start, error }
  }
}

/**
 * Calls `fn` and reports whether its promise settled before the next
 * macrotask, i.e. without waiting on any timer or I/O: "at once" as a fact
 * about the code path, not a wall-clock guess.
 */
export async function atOnce<T> (fn: () => Promise<T>): Promise<{ settled: boolean, value?: T, error?: unknown }> {
  let settled = false
  const p = fn().then(value => { settled = true; return { value } }, (error: unknown) => { settled = true; return { error } })
  await new Promise(resolve => setImmediate(resolve))
  const early = settled
  return { settled: early, ...await p }
}
