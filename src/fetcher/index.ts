/**
 * The fetch pool (DESIGN §3, issue 4): every external fetch of the gateway —
 * theme pages, theme assets, rule `href` subrequests — goes through one
 * `FetchPool`, so a slow, failing or vanished theme server never holds page
 * requests for longer than `fetch.wait` (stale copy) or `fetch.missWait`
 * (no copy).
 *
 * Semantics in brief:
 * - Own undici Agent (`fetch.concurrency` connections per origin, keep-alive,
 *   no pipelining) and a FIFO job queue with `fetch.concurrency` slots in
 *   total; at most `maxQueued` (default 1000) jobs wait, a job beyond that is
 *   refused at once (`LIVERY_ERR_FETCH_QUEUE_FULL`, or the stale copy).
 * - One job per URL (fragment stripped); every caller joins it; its result is
 *   stored even if every caller gave up. Only its total deadline
 *   (`fetch.timeouts.total`, counted from creation, queueing included),
 *   `close()` or `destroy()` abort it.
 * - A caller waits at most `fetch.wait` (copy stale within
 *   `staleWhileRevalidate`) or `fetch.missWait` (no copy, or older) counted
 *   from the job's creation, so callers arriving late get the stale copy (or
 *   `LIVERY_ERR_FETCH_WAIT`) at once. A copy within `staleIfError` is served
 *   when the fetch fails or the wait runs out.
 * - After a failed job the URL is not fetched again before `fetch.minTtl`;
 *   callers get the stale copy, or the same error, at once.
 * - Freshness: `s-maxage`, `max-age`, `Expires` (minus `Age`), else
 *   `fetch.ttl`, never below `fetch.minTtl` — `no-store`/`no-cache` get minTtl.
 * - Refreshes send `If-None-Match`/`If-Modified-Since` from the stored copy and
 *   nothing of the page request; a 304 keeps the body and renews freshness.
 *   Redirects are not followed: any status other than 2xx/304 is
 *   `LIVERY_ERR_FETCH_STATUS`.
 * - Circuit per origin: `circuit.failures` failures in a row (transport
 *   errors, timeouts, 5xx, 408, 429 — not other 4xx or a too-large body) open
 *   it for `circuit.coolDown`, doubling up to `maxCoolDown` while probes fail.
 * - Persistence: one binary file per URL under `directory` (see `store.ts`);
 *   bounded with the in-memory copies by `maxEntries` / `maxBytes`.
 *
 * diagnostics_channel channels (the lead's `src/metrics` subscribes):
 * - `livery:fetch:job_start`      `{ url, origin, probe: boolean }` — a job got a slot
 *                                 (jobs_in_flight / jobs_queued gauges come from `stats()`).
 * - `livery:fetch:job_end`        `{ url, origin, ok: boolean, durationMs }`.
 * - `livery:fetch:deduplicated`   `{ url }` — a caller joined a running job
 *                                 → `livery_fetch_deduplicated_total`.
 * - `livery:fetch:timeout`        `{ url, origin, phase: 'connect'|'firstByte'|'betweenBytes'|'total' }`
 *                                 → `livery_fetch_timeouts_total`.
 * - `livery:fetch:error`          `{ url, origin, code, error }` — a job failed (timeouts included;
 *                                 not jobs cancelled by close or by an open circuit) → `livery_fetch_errors_total`.
 * - `livery:fetch:stale_served`   `{ url, reason: 'wait'|'error'|'backoff'|'circuit'|'queue' }`
 *                                 → `livery_fetch_stale_served_total`.
 * - `livery:fetch:circuit_open`   `{ origin, coolDown, until, failures }` → `livery_fetch_circuit_open{origin}` = 1.
 * - `livery:fetch:circuit_half_open` `{ origin }` — the probe is starting (gauge stays 1).
 * - `livery:fetch:circuit_close`  `{ origin }` → `livery_fetch_circuit_open{origin}` = 0.
 * - `livery:fetch:persist_error`  `{ url, error }` — a disk write or removal failed (the copy stays in memory).
 * - `livery:fetch:corrupt`        `{ file, error }` — a persisted file failed its checks on `open()` and was removed.
 */
export { FetchPool, type FetchPoolOptions } from './pool.ts'
export type { CircuitState, FetchLock, FetchOutcome, FetchPoolStats, FetchedResource, ResourceLoader } from './types.ts'
export { freshnessLifetime } from './freshness.ts'
