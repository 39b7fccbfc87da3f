/**
 * The one error registry (STYLE §2.3). Every failure Livery reports has a
 * stable `LIVERY_ERR_*` code, a message template an operator can act on and
 * the HTTP status the server answers with when the failure ends a request.
 *
 * Branch on `err.code`, never on `instanceof`: errors are branded with
 * `Symbol.for`, so they are recognised across module copies and threads.
 */

export interface ErrorSpec {
  /** Message template; `%s` placeholders are filled in order. */
  readonly message: string
  /** HTTP status when this error ends a request. */
  readonly status: number
}

export const errorSpecs = {
  // --- config and CLI ---
  LIVERY_ERR_CONFIG: { message: 'invalid configuration: %s', status: 500 },
  LIVERY_ERR_CONFIG_FILE: { message: 'cannot read config file %s: %s', status: 500 },
  LIVERY_ERR_USAGE: { message: '%s (see livery --help)', status: 500 },
  LIVERY_ERR_CLOSED: { message: '%s is closed', status: 503 },
  LIVERY_ERR_LISTEN: { message: 'cannot listen on %s: %s', status: 500 },
  LIVERY_ERR_CACHE_DIRECTORY: { message: 'cache directory %s cannot be written: %s', status: 500 },

  // --- server: requests the gateway refuses itself ---
  LIVERY_ERR_NO_SITE: { message: 'no site is configured for host %s', status: 404 },
  LIVERY_ERR_BAD_REQUEST: { message: 'bad request: %s', status: 400 },
  LIVERY_ERR_METHOD_NOT_ALLOWED: { message: 'the %s method is not served: Livery is a reverse proxy, not a forward proxy', status: 405 },
  LIVERY_ERR_DRAINING: { message: 'the gateway is shutting down', status: 503 },
  LIVERY_ERR_FORBIDDEN: { message: '%s', status: 403 },
  LIVERY_ERR_UNAUTHORIZED: { message: '%s', status: 401 },

  // --- proxy: upstream failures ---
  LIVERY_ERR_UPSTREAM_CONNECT: { message: 'cannot connect to upstream %s: %s', status: 502 },
  LIVERY_ERR_UPSTREAM_RESPONSE: { message: 'invalid response from upstream %s: %s', status: 502 },
  LIVERY_ERR_UPSTREAM_HEADER_TOO_LARGE: { message: 'upstream %s sent response headers larger than %s', status: 502 },
  LIVERY_ERR_UPSTREAM_CONNECT_TIMEOUT: { message: 'connecting to upstream %s took longer than %s', status: 504 },
  LIVERY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT: { message: 'upstream %s sent no response headers within %s', status: 504 },
  LIVERY_ERR_UPSTREAM_BETWEEN_BYTES_TIMEOUT: { message: 'upstream %s sent no body bytes for %s', status: 504 },
  LIVERY_ERR_UPSTREAM_RESET: { message: 'upstream %s closed the connection mid-response: %s', status: 502 },
  LIVERY_ERR_CLIENT_ABORTED: { message: 'the client went away', status: 499 },

  // --- pool ---
  LIVERY_ERR_QUEUE_FULL: { message: 'site %s is busy: its queue is full', status: 503 },
  LIVERY_ERR_QUEUE_TIMEOUT: { message: 'site %s is busy: no slot freed within %s', status: 503 },
  LIVERY_ERR_DEADLINE: { message: 'the request ran past its deadline of %s', status: 504 },
  LIVERY_ERR_KILLED: { message: 'the request ran longer than %s while site %s had requests waiting', status: 503 },
  LIVERY_ERR_OVERLOADED: { message: 'the gateway is overloaded (%s)', status: 503 },
  LIVERY_ERR_TRANSFORM_BUSY: { message: 'all %s theming threads are busy and %s transforms are queued', status: 503 },
  LIVERY_ERR_WARM: { message: 'cannot warm %s: %s', status: 502 },
  LIVERY_ERR_THEME_REFRESH: { message: 'refreshing theme resources %s failed: %s', status: 502 },
  LIVERY_ERR_CLUSTER_METRICS: { message: 'cannot aggregate metrics across worker processes: %s', status: 500 },

  // --- cache ---
  LIVERY_ERR_CACHE_STORE: { message: 'cache tier %s failed: %s', status: 500 },
  LIVERY_ERR_CACHE_TIMEOUT: { message: 'cache tier %s did not answer within %s', status: 500 },
  LIVERY_ERR_CACHE_ENTRY_CORRUPT: { message: 'cache entry %s is corrupt: %s', status: 500 },
  LIVERY_ERR_NOT_CACHED: { message: 'the request says only-if-cached and the page is not in the cache', status: 504 },
  LIVERY_ERR_PURGE_REQUEST: { message: 'bad purge request: %s', status: 400 },
  LIVERY_ERR_PURGE_TOO_LARGE: { message: 'purge request body is larger than %s bytes', status: 413 },
  LIVERY_ERR_PURGE_METHOD: { message: 'purge requests use %s, not %s', status: 405 },

  // --- fetcher ---
  LIVERY_ERR_FETCH: { message: 'fetching %s failed: %s', status: 502 },
  LIVERY_ERR_FETCH_STATUS: { message: 'fetching %s failed: the server answered %s', status: 502 },
  LIVERY_ERR_FETCH_TIMEOUT: { message: 'fetching %s timed out: %s', status: 504 },
  LIVERY_ERR_FETCH_TOO_LARGE: { message: 'fetching %s failed: the body is larger than the %s limit', status: 502 },
  LIVERY_ERR_FETCH_CIRCUIT_OPEN: { message: 'origin %s is failing; not asked again before %s', status: 503 },
  LIVERY_ERR_FETCH_WAIT: { message: 'fetching %s did not finish within %s', status: 504 },
  LIVERY_ERR_FETCH_QUEUE_FULL: { message: 'fetching %s refused: %s fetch jobs are already waiting (raise fetch.concurrency or find the slow origin)', status: 503 },

  // --- theme ---
  LIVERY_ERR_RULES: { message: '%s', status: 500 },
  LIVERY_ERR_SELECTOR: { message: '%s', status: 500 },
  LIVERY_ERR_THEME_UNAVAILABLE: { message: 'theme %s is unavailable: %s', status: 500 },
  LIVERY_ERR_TRANSFORM: { message: 'theming failed: %s', status: 500 },
  LIVERY_ERR_TRANSFORM_TIMEOUT: { message: 'theming took longer than %s', status: 500 },
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof errorSpecs

const kLiveryError = Symbol.for('livery.error')

export class LiveryError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly [kLiveryError] = true

  constructor (code: ErrorCode, args: readonly unknown[] = [], options?: { cause?: unknown }) {
    super(format(errorSpecs[code].message, args), options)
    this.name = 'LiveryError'
    this.code = code
    this.status = errorSpecs[code].status
  }
}

function format (template: string, args: readonly unknown[]): string {
  let i = 0
  return template.replace(/%s/g, () => {
    const v = args[i++]
    return v instanceof Error ? v.message : String(v)
  })
}

/** Creates a coded error; `cause` keeps the underlying failure for the logs. */
export function liveryError (code: ErrorCode, ...args: unknown[]): LiveryError {
  return new LiveryError(code, args)
}

export function wrapError (code: ErrorCode, cause: unknown, ...args: unknown[]): LiveryError {
  return new LiveryError(code, args, { cause })
}

export function isLiveryError (err: unknown): err is LiveryError {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[kLiveryError] === true
}

/** True when `err` is a Livery error with the given code. */
export function hasCode (err: unknown, code: ErrorCode): err is LiveryError {
  return isLiveryError(err) && err.code === code
}
