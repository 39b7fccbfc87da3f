/**
 * The response cache (DESIGN §4): RFC 9111 shared-cache semantics with
 * RFC 5861 stale directives, per-site grace / keep, coalescing with
 * hit-for-miss, and byte-bounded tiers behind one store interface.
 *
 * Metrics are diagnostics_channel events (module code never imports
 * prom-client); every publish is guarded by `hasSubscribers`, so an
 * unobserved hit pays nothing.
 *
 * | channel                     | message                                                      | metric                                   |
 * |-----------------------------|--------------------------------------------------------------|------------------------------------------|
 * | `livery:cache:hit`          | `{ tier: string }` per response served fresh from cache      | `livery_cache_hits_total{tier}`          |
 * | `livery:cache:miss`         | `{ site, background: boolean, revalidate: boolean }` per fill | `livery_cache_misses_total`              |
 * | `livery:cache:stale`        | `{ tier, xcache: 'STALE' \| 'UPDATING' }` per stale response  | `livery_cache_stale_served_total`        |
 * | `livery:cache:eviction`     | `{ tier, bytes }` per entry evicted for space                 | `livery_cache_evictions_total{tier}`     |
 * | `livery:cache:store_error`  | `{ tier, op: 'get' \| 'put' \| 'delete', error }`              | (count it; a failed tier never fails a request) |
 *
 * Gauges: `HttpCache#stats()` → `{ tiers: { [tier]: { entries, bytes, maxBytes, evictions } }, inFlight, waiting, hitForMiss }`;
 * `livery_cache_bytes{tier}` is `tiers[tier].bytes`.
 */
export { HttpCache, type CacheRequest, type CacheStats, type HttpCacheOptions, type LookupResult, type XCache } from './http-cache.ts'
export { Fill, type FillDecision } from './fill.ts'
export { CacheEntry, type EntryMeta, decodeEntry, encodeEntry, softPurged, F_HEURISTIC, F_MUST_REVALIDATE, F_NO_CACHE, F_SOFT_PURGED, F_VARY_MARKER } from './entry.ts'
export { type CacheStore, type PurgeOptions, type PurgeSelector, type TierStats, matchesSelector } from './store.ts'
export { MemoryStore, type MemoryStoreOptions } from './memory-store.ts'
export { Coalescer, Lock, type Release } from './coalesce.ts'
export { decide, buildEntry, freshen, notModified, requestCacheControl, type Headers, type StorePlan, type Verdict } from './policy.ts'
