/** Config builders for the pool tests: the full typed slices with small overrides. */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { PoolConfig, SiteConfig, SitePoolConfig } from '../../src/config/types.ts'

export function poolConfig (over: Partial<PoolConfig> = {}): PoolConfig {
  return { maxConcurrent: 1024, maxQueue: 512, queueTimeout: 2000, maxEventLoopDelay: 0, maxHeap: 0, ...over }
}

export function siteConfig (name: string, pool: Partial<SitePoolConfig> = {}): SiteConfig {
  return {
    name,
    hosts: [`${name}.test`],
    pathPrefix: '/',
    upstream: 'http://127.0.0.1:1',
    preserveHost: false,
    serverTiming: false,
    connections: 16,
    timeouts: { connect: 3500, firstByte: 60000, betweenBytes: 60000 },
    pool: { maxConcurrent: 256, maxQueue: 256, queueTimeout: 2000, requestTimeout: 120000, killAfter: 10000, ...pool },
    grace: 0,
    staleIfError: 3600000,
    keep: 3600000,
    defaultTtl: 0,
    stripSetCookie: false,
    passCookies: [],
    targetedField: 'Livery-Cache-Control',
  }
}

/** Resolves with the next message published on a diagnostics channel. */
export function nextMessage<T> (name: string): Promise<T> {
  return new Promise<T>(resolve => {
    const onMessage = (message: unknown): void => {
      unsubscribe(name, onMessage)
      resolve(message as T)
    }
    subscribe(name, onMessage)
  })
}

/**
 * The pool's timers are unref'd, as in production where an open client socket
 * keeps the process alive. A test awaiting one of them has no such socket, so
 * it holds the loop open itself until teardown.
 */
export function keepAlive (t: { teardown: (fn: () => void) => void }): void {
  const timer = setInterval(() => {}, 60_000)
  t.teardown(() => { clearInterval(timer) })
}
