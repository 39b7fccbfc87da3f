/**
 * What each error code means for an operator and what to do about it. The
 * type makes the compiler refuse a code without help; docs/errors.md's error
 * table is generated from this map and a test keeps the two in step.
 */
import { errorSpecs, type ErrorCode } from './errors.ts'

export const errorHelp: Readonly<Record<ErrorCode, string>> = {
  LIVERY_ERR_CONFIG: 'The configuration has problems; each line names the key, the bad value and what was expected. Fix the file or the LIVERY_* variable.',
  LIVERY_ERR_CONFIG_FILE: 'The config file cannot be read or is not YAML. Check the path and the YAML syntax at the line shown.',
  LIVERY_ERR_USAGE: 'The command line is wrong. See livery --help.',
  LIVERY_ERR_LISTEN: 'Livery cannot open its listening port at start-up: another process holds it, the port needs privileges, or the address is not on this machine. Exit status 2.',
  LIVERY_ERR_CACHE_DIRECTORY: 'cache.directory cannot be created or written by the user running Livery (EACCES in a container usually means a volume owned by root). Fix the ownership or point cache.directory elsewhere. Exit status 2.',
  LIVERY_ERR_CLOSED: 'A component was used after shutdown began; seen only while stopping.',
  LIVERY_ERR_NO_SITE: 'No site answers this Host header. Add the host to a site\'s hosts, or add a site with hosts: ["*"].',
  LIVERY_ERR_BAD_REQUEST: 'The client sent a malformed request (control characters in the path, a target that is not a path, a Host that is not host[:port], two Host headers).',
  LIVERY_ERR_METHOD_NOT_ALLOWED: 'A client asked Livery to open a tunnel (CONNECT), as it would ask a forward proxy. Livery only serves its sites; point the client at a forward proxy instead.',
  LIVERY_ERR_DRAINING: 'The gateway is shutting down; the load balancer should send the request elsewhere.',
  LIVERY_ERR_FORBIDDEN: 'The admin route refused the request (metrics and status are not served to requests that came through a proxy: Forwarded, X-Forwarded-*, X-Real-IP or Via).',
  LIVERY_ERR_UNAUTHORIZED: 'The admin token is missing or wrong. Send Authorization: Bearer <admin.token>.',
  LIVERY_ERR_UPSTREAM_CONNECT: 'The upstream refused the connection or its name does not resolve. Check that the CMS runs and sites[].upstream.',
  LIVERY_ERR_UPSTREAM_RESPONSE: 'The upstream sent something that is not valid HTTP (bad status line, NUL in a header, body longer than Content-Length). Fix the upstream.',
  LIVERY_ERR_UPSTREAM_HEADER_TOO_LARGE: 'The upstream answered with response headers over 64 KB (huge cookies, debug headers). Fix the upstream; the limit guards the gateway against hostile answers.',
  LIVERY_ERR_UPSTREAM_CONNECT_TIMEOUT: 'The upstream did not accept a connection within timeouts.connect. Check the network or raise the timeout.',
  LIVERY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT: 'The upstream accepted the request but sent no headers within timeouts.firstByte. The CMS is overloaded or stuck.',
  LIVERY_ERR_UPSTREAM_BETWEEN_BYTES_TIMEOUT: 'The upstream stopped sending its body for timeouts.betweenBytes; the client connection is closed.',
  LIVERY_ERR_UPSTREAM_RESET: 'The upstream closed the connection mid-response; the client connection is closed so no truncated page passes as complete.',
  LIVERY_ERR_CLIENT_ABORTED: 'The client went away before the answer; nothing to do.',
  LIVERY_ERR_QUEUE_FULL: 'The site\'s slots and queue are full (pool.maxConcurrent, pool.maxQueue). The upstream is slow or the limits are too low.',
  LIVERY_ERR_QUEUE_TIMEOUT: 'No slot freed within pool.queueTimeout. The upstream is slow; requests are shed rather than piling up.',
  LIVERY_ERR_DEADLINE: 'The request ran past sites[].pool.requestTimeout; the upstream call was aborted.',
  LIVERY_ERR_KILLED: 'The request ran longer than sites[].pool.killAfter while the site\'s slots were full and requests waited; it was aborted to make room.',
  LIVERY_ERR_OVERLOADED: 'Event-loop delay or heap is above pool.maxEventLoopDelay / pool.maxHeap; new requests are shed and readyz says not ready.',
  LIVERY_ERR_TRANSFORM_BUSY: 'Every theming thread is busy and the thread queue is full; the page is served unthemed. Raise LIVERY_THREADS.',
  LIVERY_ERR_WARM: 'A warm or prefetch job could not store the page: the upstream failed, or answered with something the cache does not store (no-store, private, Set-Cookie, an error status). The job is retried with backoff, then dead-lettered (livery worker --dead-letters).',
  LIVERY_ERR_THEME_REFRESH: 'The background theme refresh could not fetch a theme page or asset. Pages stay themed from the copies in hand (for fetch.staleIfError); fix the theme server before they run out. The job retries with backoff.',
  LIVERY_ERR_CLUSTER_METRICS: 'The metrics route could not collect from every worker process; retry the scrape.',
  LIVERY_ERR_CACHE_STORE: 'A cache tier failed; the request was answered without it and the failure counted.',
  LIVERY_ERR_CACHE_TIMEOUT: 'A cache tier (usually Redis) did not answer within its timeout and was skipped.',
  LIVERY_ERR_CACHE_ENTRY_CORRUPT: 'A stored entry failed its checksum (a torn write) and was dropped, never served.',
  LIVERY_ERR_NOT_CACHED: 'The client asked for only-if-cached and the page is not in the cache (RFC 9111 §5.2.1.7).',
  LIVERY_ERR_PURGE_REQUEST: 'The purge request body is malformed; the message names the field. Send {"urls":[],"prefixes":[],"tags":[],"site":"","all":false,"soft":false}.',
  LIVERY_ERR_PURGE_TOO_LARGE: 'The purge request body is over 1 MB; split it.',
  LIVERY_ERR_PURGE_METHOD: 'The purge route takes POST.',
  LIVERY_ERR_FETCH: 'The fetch pool could not fetch a theme, asset or href resource; a stale copy is used when there is one.',
  LIVERY_ERR_FETCH_STATUS: 'The theme server answered with an error status; a stale copy is used when there is one.',
  LIVERY_ERR_FETCH_TIMEOUT: 'A fetch ran past one of fetch.timeouts; the theme server is slow or hung.',
  LIVERY_ERR_FETCH_TOO_LARGE: 'The fetched resource is larger than fetch.maxSize.',
  LIVERY_ERR_FETCH_CIRCUIT_OPEN: 'The origin failed fetch.circuit.failures times in a row; it is not asked again until the cool-down ends.',
  LIVERY_ERR_FETCH_WAIT: 'No copy of the resource and the fetch did not finish within fetch.missWait; the page is served unthemed.',
  LIVERY_ERR_FETCH_QUEUE_FULL: 'Too many fetch jobs are waiting; an origin is slow. Raise fetch.concurrency or find the slow origin.',
  LIVERY_ERR_RULES: 'The rules file is invalid; the message names the file, line and rule.',
  LIVERY_ERR_SELECTOR: 'A selector in the rules is not supported; the message names the file, line and expression.',
  LIVERY_ERR_THEME_UNAVAILABLE: 'The theme page cannot be had; pages are served unthemed with X-Livery-Theme: unavailable.',
  LIVERY_ERR_TRANSFORM: 'Theming one page failed; it is served unthemed.',
  LIVERY_ERR_TRANSFORM_TIMEOUT: 'Theming one page ran past theme.timeout; its thread was stopped and the page served unthemed with X-Livery-Theme: timeout.',
}

export function errorReference (): string {
  const out = ['| code | status | meaning and what to do |', '| --- | --- | --- |']
  for (const code of Object.keys(errorSpecs) as ErrorCode[]) {
    out.push(`| \`${code}\` | ${errorSpecs[code].status} | ${errorHelp[code].replace(/\|/g, '\\|')} |`)
  }
  return out.join('\n') + '\n'
}
