/**
 * The configuration schema: every key, its type, default and meaning, in
 * one place (fastify keeps defaults and units together the same way). The
 * validator, the env override mapping and `livery --help` all read it.
 */

export interface Leaf {
  readonly t: 'string' | 'int' | 'number' | 'bool' | 'duration' | 'size' | 'url' | 'strings' | 'access' | 'path' | 'enum'
  readonly doc: string
  readonly default?: unknown
  readonly optional?: boolean
  readonly min?: number
  readonly max?: number
  readonly values?: readonly string[]
  readonly pattern?: RegExp
  readonly patternDoc?: string
}

export interface ObjectNode {
  readonly t: 'object'
  readonly doc?: string
  readonly fields: Readonly<Record<string, Node>>
  /** An optional object is absent unless the file or env names one of its keys. */
  readonly optional?: boolean
}

export interface ArrayNode {
  readonly t: 'array'
  readonly doc?: string
  readonly of: ObjectNode
  readonly min?: number
}

export type Node = Leaf | ObjectNode | ArrayNode

/**
 * The session cookies of the big CMSs, the default of `sites[].passCookies`:
 * WordPress (logged in, password-protected posts, commenters), Plone
 * (`__ac` of PlonePAS, `auth_tkt` of plone.session) and Drupal (`SESS…`,
 * and `SSESS…` over HTTPS).
 */
export const defaultPassCookies: readonly string[] = [
  'wordpress_logged_in_*', 'wp-postpass_*', 'comment_author_*',
  '__ac', 'auth_tkt',
  'SESS*', 'SSESS*',
]

const obj = (fields: Record<string, Node>, extra: Partial<ObjectNode> = {}): ObjectNode => ({ t: 'object', fields, ...extra })

const timeouts = obj({
  connect: { t: 'duration', default: '3.5s', doc: 'time to open a connection to the upstream' },
  firstByte: { t: 'duration', default: '60s', doc: 'time from sending the request to the response headers' },
  betweenBytes: { t: 'duration', default: '60s', doc: 'longest silence while the body streams' },
})

const site = obj({
  name: { t: 'string', doc: 'a short name for logs and metrics', pattern: /^[A-Za-z0-9_.-]{1,64}$/, patternDoc: 'letters, digits, ".", "_" or "-" (at most 64)' },
  hosts: { t: 'strings', default: ['*'], doc: 'Host headers this site answers: exact names, *.example.org, or "*" for any' },
  pathPrefix: { t: 'string', default: '/', doc: 'only requests under this path go to the site', pattern: /^\/[^\s?#]*$/, patternDoc: 'a path starting with "/"' },
  upstream: { t: 'url', doc: 'the origin server, e.g. http://127.0.0.1:8081' },
  serverTiming: { t: 'bool', default: false, doc: 'send a Server-Timing header (queue wait, cache lookup, theme fetch, upstream first byte, theming) to every client; it always goes to requests through trustedProxies and to holders of the admin token (X-Livery-Token)' },
  preserveHost: { t: 'bool', default: true, doc: 'send the client\'s Host header upstream (false: the upstream\'s own host)' },
  connections: { t: 'int', default: 128, min: 1, max: 65536, doc: 'keep-alive connections to the upstream per process' },
  timeouts,
  pool: obj({
    maxConcurrent: { t: 'int', default: 256, min: 1, doc: 'requests of this site in flight at once (the bulkhead)' },
    maxQueue: { t: 'int', default: 256, min: 0, doc: 'requests of this site waiting for a slot' },
    queueTimeout: { t: 'duration', default: '2s', doc: 'longest wait for a slot before 503' },
    requestTimeout: { t: 'duration', default: '120s', doc: 'deadline of a request; past it the upstream call is aborted and the client gets 504' },
    killAfter: { t: 'duration', default: '10s', doc: 'when slots are full and requests wait, requests older than this are aborted, oldest first' },
  }),
  grace: { t: 'duration', default: '0s', doc: 'serve an expired page this long while one background refresh runs, even if the origin did not allow it with stale-while-revalidate (RFC 9111 §4.2.4: off by default)' },
  staleIfError: { t: 'duration', default: '1h', doc: 'serve an expired page this long when the upstream fails (connection error, timeout, 500/502/503/504), as RFC 5861 stale-if-error and nginx\'s proxy_cache_use_stale error timeout; never for must-revalidate, no-cache or s-maxage responses' },
  keep: { t: 'duration', default: '1h', doc: 'hold expired pages that have validators this long, so the refresh is a conditional request (bounded by the memory budget like any entry)' },
  targetedField: { t: 'string', default: 'Livery-Cache-Control', doc: 'response field with cache directives for Livery alone (RFC 9213 targeted field; it wins over Surrogate-Control, CDN-Cache-Control and Cache-Control, and is not forwarded); empty: none', pattern: /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)?$/, patternDoc: 'a header field name' },
  stripSetCookie: { t: 'bool', default: false, doc: 'store responses that set cookies, without their Set-Cookie (for origins that set tracking cookies on public pages); by default such responses are never stored, as in Varnish' },
  defaultTtl: { t: 'duration', default: '0s', doc: 'freshness for responses with no caching headers (0: do not cache them)' },
  passCookies: {
    t: 'strings',
    default: defaultPassCookies,
    doc: 'session cookie names (globs: * any run, ? one character, case-sensitive) that make a request pass the cache; other cookies are forwarded but neither pass nor vary the key. Replaces the default list (WordPress, Plone, Drupal); [] passes none',
    pattern: /^[A-Za-z0-9!#$%&'*+\-.^_`|~?]+$/,
    patternDoc: 'cookie names or globs (letters, digits, !#$%&\'*+-.^_`|~ and ?)',
  },
  warm: obj({
    afterPurge: { t: 'bool', default: false, doc: 'after a purge, fetch the pages that were hot again (a worker job), so the next visitor gets a HIT; a purge body can also ask with "warm": true' },
    hotHits: { t: 'int', default: 2, min: 1, doc: 'cache hits since a page was stored that make it hot (only counted with afterPurge)' },
    urls: { t: 'strings', default: [], doc: 'pages to prefetch: paths on the site or absolute URLs' },
    sitemap: { t: 'string', default: '', doc: 'URL of a sitemap.xml whose <loc> pages are prefetched' },
    interval: { t: 'duration', default: '0s', doc: 'how often urls and sitemap are prefetched (0: only on demand, with livery warm)' },
  }),
  theme: obj({
    rules: { t: 'path', doc: 'the Diazo rules file; its <theme href> names the theme page' },
    base: { t: 'string', default: '', doc: 'URL that relative hrefs in the rules (the theme page) resolve against (default: the rules file\'s folder)' },
    absolutePrefix: { t: 'string', default: '', doc: 'prefix for theme-relative links (default: the theme\'s own URL)' },
    params: { t: 'strings', default: [], doc: 'parameters for rule conditions, as name=value' },
    threshold: { t: 'size', default: '64KB', doc: 'pages at least this large are themed on a worker thread (0: every page)' },
    timeout: { t: 'duration', default: '500ms', doc: 'time budget of one transform; past it the page is served unthemed' },
    inlineBudget: { t: 'duration', default: '20ms', doc: 'a page below threshold is still sent to a thread when the site\'s measured CPU cost per byte says theming it inline would hold the event loop longer than this (0: size alone decides)' },
    rememberTimeout: { t: 'duration', default: '30s', doc: 'a page whose transform ran past timeout is served unthemed for this long without a new attempt, so one page cannot terminate threads in a loop (0: retry every time)' },
  }, { optional: true, doc: 'theming; without it the site is a pure caching reverse proxy' }),
})

export const schema: ObjectNode = obj({
  listen: obj({
    host: { t: 'string', default: '0.0.0.0', doc: 'address to listen on' },
    port: { t: 'int', default: 8080, min: 0, max: 65535, doc: 'port to listen on (0: any free port)' },
  }),
  log: obj({
    level: { t: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', doc: 'level of the non-access log' },
    access: { t: 'access', default: true, doc: 'access log: true, false, or a sampling rate between 0 and 1' },
    format: { t: 'enum', values: ['json', 'combined'], default: 'json', doc: 'access log format: JSON lines, or the combined log format as varnishncsa writes it (then on stdout, and the rest of the log on stderr)' },
  }),
  admin: obj({
    prefix: { t: 'string', default: '/_livery', doc: 'path prefix of the admin routes', pattern: /^\/[A-Za-z0-9_.~-]+$/, patternDoc: 'one path segment starting with "/"' },
    token: { t: 'string', default: '', doc: 'bearer token for the purge API (or LIVERY_ADMIN_TOKEN); empty: purging is off' },
    port: { t: 'int', default: 0, min: 0, max: 65535, doc: 'optional separate admin port serving /metrics (0: none)' },
    purgeFrom: {
      t: 'strings',
      default: [],
      doc: 'addresses or CIDR ranges whose PURGE and BAN requests are accepted without the token, as Varnish\'s acl purge (the socket\'s peer is checked, never X-Forwarded-For); empty: the token only',
    },
  }),
  metrics: obj({
    enabled: { t: 'bool', default: true, doc: 'serve the metrics route (LIVERY_METRICS_ENABLED=false turns it off)' },
  }),
  trustedProxies: {
    t: 'strings',
    default: [],
    doc: 'addresses or CIDR ranges (IPv4, IPv6) of proxies in front of Livery: only from these peers are X-Forwarded-*, Forwarded and X-Real-IP kept and extended, and the client address and scheme taken from them; from anyone else they are dropped (none trusted by default, as nginx\'s set_real_ip_from)',
  },
  watch: { t: 'bool', default: false, doc: 'reload (as on SIGHUP) when the configuration file or a rules file changes on disk' },
  shutdownTimeout: { t: 'duration', default: '30s', doc: 'on SIGTERM, how long in-flight requests may take to finish' },
  processes: { t: 'int', default: 0, min: 0, max: 1024, doc: 'worker processes for livery serve (LIVERY_PROCESSES); 0 means one per core, 1 means no cluster' },
  threads: { t: 'int', default: 0, min: 0, max: 1024, doc: 'transform threads per process (LIVERY_THREADS); 0 shares the cores between the processes (at least 1)' },
  cache: obj({
    directory: { t: 'path', default: './.livery-cache', doc: 'disk tier and the fetch pool\'s persisted entries' },
    memory: obj({
      maxSize: { t: 'size', default: '256MB', doc: 'bytes held by the memory tier of each process: a gateway of N processes holds up to N times this (/_livery/status shows cache.memoryBudget)' },
      maxEntrySize: { t: 'size', default: '16MB', doc: 'larger responses are not cached' },
    }),
    disk: obj({
      maxSize: { t: 'size', default: '2GB', doc: 'bytes of disk tier files each process indexes (0: no disk tier); the processes of a gateway share the directory, not the index, so it can hold up to N times this (docs/scaling.md)' },
    }),
    redis: obj({
      url: { t: 'url', doc: 'Redis URL (redis://host:port)', pattern: /^rediss?:\/\//, patternDoc: 'a redis:// or rediss:// URL' },
      timeout: { t: 'duration', default: '50ms', doc: 'longest wait for Redis before the tier is skipped (the cross-instance miss lock waits at least 1 s)' },
      prefix: { t: 'string', default: 'livery:', doc: 'key prefix, to share one Redis between deployments' },
    }, { optional: true, doc: 'optional shared tier, purge bus and single-flight' }),
    lockTimeout: { t: 'duration', default: '5s', doc: 'longest wait behind a coalesced miss before going upstream alone' },
    hitForMiss: { t: 'duration', default: '120s', doc: 'how long an uncacheable answer lets requests skip the waiting list' },
  }),
  fetch: obj({
    concurrency: { t: 'int', default: 4, min: 1, max: 1024, doc: 'fetch jobs running at once per process' },
    ttl: { t: 'duration', default: '60s', doc: 'freshness of a fetched resource without caching headers' },
    minTtl: { t: 'duration', default: '5s', doc: 'floor on freshness, and the pause after a failed refresh' },
    staleWhileRevalidate: { t: 'duration', default: '1d', doc: 'how long a stale copy is used while refreshing' },
    staleIfError: { t: 'duration', default: '1d', doc: 'how long a stale copy is used while the origin fails' },
    wait: { t: 'duration', default: '200ms', doc: 'longest wait for a refresh before the stale copy is used' },
    missWait: { t: 'duration', default: '3s', doc: 'longest wait for a resource with no copy' },
    maxSize: { t: 'size', default: '10MB', doc: 'largest body a fetch accepts' },
    timeouts: obj({
      connect: { t: 'duration', default: '2s', doc: 'connect timeout of a fetch' },
      firstByte: { t: 'duration', default: '10s', doc: 'time to the response headers' },
      betweenBytes: { t: 'duration', default: '10s', doc: 'longest silence in a body' },
      total: { t: 'duration', default: '30s', doc: 'deadline of a whole job' },
    }),
    circuit: obj({
      failures: { t: 'int', default: 5, min: 1, doc: 'consecutive failures that open an origin\'s circuit' },
      coolDown: { t: 'duration', default: '10s', doc: 'first cool-down; doubles while the origin keeps failing' },
      maxCoolDown: { t: 'duration', default: '5m', doc: 'longest cool-down' },
    }),
  }),
  pool: obj({
    maxConcurrent: { t: 'int', default: 1024, min: 1, doc: 'requests in flight per process, all sites together' },
    maxQueue: { t: 'int', default: 512, min: 0, doc: 'requests waiting for a slot per process' },
    queueTimeout: { t: 'duration', default: '2s', doc: 'longest wait for a process slot' },
    maxEventLoopDelay: { t: 'duration', default: '1s', doc: 'above this event-loop delay new requests are shed (0: off)' },
    maxHeap: { t: 'size', default: '0', doc: 'above this heap use new requests are shed (0: off)' },
  }),
  worker: obj({
    concurrency: { t: 'int', default: 4, min: 1, max: 1024, doc: 'jobs one livery worker process runs at once (LIVERY_WORKER_CONCURRENCY)' },
    processes: { t: 'int', default: 1, min: 1, max: 1024, doc: 'processes livery worker runs (LIVERY_WORKER_PROCESSES)' },
    port: { t: 'int', default: 9464, min: 0, max: 65535, doc: 'port of livery worker\'s admin routes /metrics, /healthz, /dead-letters (0: any free port)' },
    attempts: { t: 'int', default: 5, min: 1, max: 100, doc: 'runs of a failing job, the first included, before it is dead-lettered' },
    backoff: { t: 'duration', default: '1s', doc: 'delay before a failed job\'s first retry; doubles for each later one' },
    rate: { t: 'number', default: 10, min: 0, doc: 'page fetches per second that warming and prefetch send upstream, all workers together (0: no limit)' },
    maxDeadLetters: { t: 'int', default: 1000, min: 1, doc: 'dead-lettered jobs kept per job kind, oldest dropped first' },
    themeRefreshAhead: { t: 'duration', default: '10s', doc: 'themes and their assets are refreshed in the background this long before they go stale; copies that live less than twice this are refreshed on the request path as before (0: no background refresh)' },
    themeCheck: { t: 'duration', default: '5m', doc: 'how often every theme and rules file is checked as livery check does (0: never)' },
  }, { doc: 'background jobs: theme refresh, warming after a purge, prefetch, theme checks; on Redis (cache.redis) for livery worker processes, else in-process' }),
  sites: { t: 'array', of: site, min: 1, doc: 'the sites, matched by Host header, then path prefix' },
})
