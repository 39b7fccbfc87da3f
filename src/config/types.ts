/**
 * The validated, frozen configuration. Durations are milliseconds, sizes are
 * bytes. Constructors take their slice (`config.fetch`, `site.pool`, …).
 */

export interface TimeoutsConfig {
  /** @default 3500 ms */
  readonly connect: number
  /** @default 60000 ms */
  readonly firstByte: number
  /** @default 60000 ms */
  readonly betweenBytes: number
}

export interface SitePoolConfig {
  readonly maxConcurrent: number
  readonly maxQueue: number
  readonly queueTimeout: number
  readonly requestTimeout: number
  readonly killAfter: number
}

export interface ThemeConfig {
  /** Absolute path of the rules file. */
  readonly rules: string
  /** Base URL for relative hrefs in the rules; '' means the rules file's folder. */
  readonly base: string
  readonly absolutePrefix: string
  readonly params: readonly string[]
  readonly threshold: number
  readonly timeout: number
  /** ms; optional for hand-built test configs (0). */
  readonly inlineBudget?: number
  /** ms; optional for hand-built test configs (0). */
  readonly rememberTimeout?: number
}

export interface WarmConfig {
  readonly afterPurge: boolean
  readonly hotHits: number
  readonly urls: readonly string[]
  /** '' for none. */
  readonly sitemap: string
  /** ms; 0: prefetch only on demand. */
  readonly interval: number
}

export interface WorkerConfig {
  readonly concurrency: number
  readonly processes: number
  readonly port: number
  readonly attempts: number
  /** ms */
  readonly backoff: number
  /** Fetches per second, all workers together; 0: no limit. */
  readonly rate: number
  readonly maxDeadLetters: number
  /** ms */
  readonly themeRefreshAhead: number
  /** ms; 0: off. */
  readonly themeCheck: number
}

export interface SiteConfig {
  readonly name: string
  readonly hosts: readonly string[]
  readonly pathPrefix: string
  readonly upstream: string
  /** Send Server-Timing to every client of the site. */
  readonly serverTiming: boolean
  readonly preserveHost: boolean
  readonly connections: number
  readonly timeouts: TimeoutsConfig
  readonly pool: SitePoolConfig
  readonly grace: number
  readonly staleIfError: number
  readonly keep: number
  readonly defaultTtl: number
  readonly stripSetCookie: boolean
  /** Globs on cookie names: a request carrying one passes the cache. */
  readonly passCookies: readonly string[]
  /** Name of Livery's own targeted cache-control field (RFC 9213); '' for none. */
  readonly targetedField: string
  /** Always present in a loaded config; optional for hand-built test sites. */
  readonly warm?: WarmConfig
  readonly theme?: ThemeConfig
}

export interface RedisConfig {
  readonly url: string
  readonly timeout: number
  readonly prefix: string
}

export interface CacheConfig {
  /** Absolute path. */
  readonly directory: string
  readonly memory: { readonly maxSize: number, readonly maxEntrySize: number }
  readonly disk: { readonly maxSize: number }
  readonly redis?: RedisConfig
  readonly lockTimeout: number
  readonly hitForMiss: number
}

export interface FetchConfig {
  readonly concurrency: number
  readonly ttl: number
  readonly minTtl: number
  readonly staleWhileRevalidate: number
  readonly staleIfError: number
  readonly wait: number
  readonly missWait: number
  readonly maxSize: number
  readonly timeouts: { readonly connect: number, readonly firstByte: number, readonly betweenBytes: number, readonly total: number }
  readonly circuit: { readonly failures: number, readonly coolDown: number, readonly maxCoolDown: number }
}

export interface PoolConfig {
  readonly maxConcurrent: number
  readonly maxQueue: number
  readonly queueTimeout: number
  readonly maxEventLoopDelay: number
  readonly maxHeap: number
}

export interface Config {
  readonly listen: { readonly host: string, readonly port: number }
  /** `access`: true, false, or a sampling rate in [0, 1]. */
  readonly log: { readonly level: string, readonly access: boolean | number, readonly format: 'json' | 'combined' }
  readonly admin: { readonly prefix: string, readonly token: string, readonly port: number, readonly purgeFrom: readonly string[] }
  readonly metrics: { readonly enabled: boolean }
  /** Addresses and CIDR ranges whose forwarding headers are believed. */
  readonly trustedProxies: readonly string[]
  /** Reload when the config or a rules file changes on disk. */
  readonly watch: boolean
  readonly shutdownTimeout: number
  readonly processes: number
  readonly threads: number
  readonly cache: CacheConfig
  readonly fetch: FetchConfig
  readonly pool: PoolConfig
  readonly worker: WorkerConfig
  readonly sites: readonly SiteConfig[]
}
