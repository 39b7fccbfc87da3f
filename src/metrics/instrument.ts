/**
 * Connects the modules' diagnostics_channel events and stats() gauges to
 * the Prometheus metrics of DESIGN §6. Modules never import prom-client;
 * this is the one place that listens. Returns the unsubscribe function the
 * gateway calls on close (several gateways can live in one test process).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { Metrics } from './metrics.ts'

export interface Instrumented {
  readonly cache?: { stats (): { tiers: Readonly<Record<string, { bytes: number, entries: number, unreclaimed?: number }>> } }
  readonly pool?: { stats (): { inFlight: Record<string, number>, queued: Record<string, number> } }
  readonly fetchPool?: { stats (): { jobsInFlight: number, jobsQueued: number, circuits: Record<string, string> } }
  readonly transformPool?: { stats (): { utilization: number, queueSize: number } }
  /** Theme transform durations come from `livery:theme:apply`. */
  readonly siteNames: readonly string[]
}

type Msg = Record<string, unknown>

export function instrument (metrics: Metrics, parts: Instrumented): () => void {
  const subs: [string, (m: unknown) => void][] = []
  const on = (name: string, fn: (m: Msg) => void): void => {
    const handler = (m: unknown): void => fn(m as Msg)
    subscribe(name, handler)
    subs.push([name, handler])
  }
  const label = (v: unknown, fallback = 'none'): string => typeof v === 'string' && v !== '' ? v : fallback

  // --- cache ---
  // Every hit counts: no label hashing per increment.
  const hit = metrics.requestCounter('livery_cache_hits_total', 'Responses served fresh from the cache, by tier', 'tier')
  const misses = metrics.counter('livery_cache_misses_total', 'Requests the cache had to fetch from the upstream', [])
  const stale = metrics.counter('livery_cache_stale_served_total', 'Stale responses served (grace, stale-while-revalidate, stale-if-error)', [])
  const evictions = metrics.counter('livery_cache_evictions_total', 'Entries evicted for space, by tier', ['tier'])
  const cacheErrors = metrics.counter('livery_cache_errors_total', 'Cache tier operations that failed (the request was answered anyway)', ['tier'])
  on('livery:cache:hit', m => hit(label(m.tier, 'memory')))
  on('livery:cache:miss', () => misses.inc())
  on('livery:cache:stale', () => stale.inc())
  on('livery:cache:eviction', m => evictions.inc({ tier: label(m.tier, 'memory') }))
  const deferred = metrics.counter('livery_cache_refreshes_deferred_total', 'Background refreshes not started because a quarter of the site\'s slots were refreshing; the next request retries', ['site'])
  on('livery:cache:refresh_deferred', m => deferred.inc({ site: label(m.site, '-') }))
  const dropped = metrics.counter('livery_cache_writes_dropped_total', 'Cache writes a tier refused (queue full, no room, eviction behind); the response was served anyway', ['tier', 'reason'])
  on('livery:cache:write_dropped', m => dropped.inc({ tier: label(m.tier, 'disk'), reason: label(m.reason, 'unknown') }))
  for (const ch of ['livery:cache:store_error', 'livery:cache:write_error', 'livery:cache:redis_error', 'livery:cache:corrupt']) {
    on(ch, m => cacheErrors.inc({ tier: label(m.tier, ch.includes('redis') ? 'redis' : 'disk') }))
  }
  if (parts.cache !== undefined) {
    const cache = parts.cache
    metrics.gauge('livery_cache_bytes', 'Bytes held by each cache tier', ['tier'], set => {
      for (const [tier, s] of Object.entries(cache.stats().tiers)) set({ tier }, s.bytes)
    })
    metrics.gauge('livery_cache_objects', 'Entries held by each cache tier', ['tier'], set => {
      for (const [tier, s] of Object.entries(cache.stats().tiers)) set({ tier }, s.entries)
    })
    metrics.gauge('livery_cache_unreclaimed_bytes', 'Bytes of entries that left the memory tier and wait for the garbage collector; they count against maxSize', ['tier'], set => {
      for (const [tier, s] of Object.entries(cache.stats().tiers)) if (s.unreclaimed !== undefined) set({ tier }, s.unreclaimed)
    })
  }

  // --- request pool and transform threads ---
  const shed = metrics.counter('livery_requests_shed_total', 'Requests refused with 503 before any work, by reason', ['reason'])
  const killed = metrics.counter('livery_requests_killed_total', 'Long-running requests aborted to free slots for waiting ones', [])
  // Shed requests are observed too (outcome="shed"): a histogram of admitted
  // waits alone looks healthiest exactly when the queue overflows.
  // Observed on every admission (each pass and miss): no per-observation label hashing.
  const queueWait = metrics.requestHistogram('livery_queue_wait_seconds', 'Time requests waited for a pool slot, by site and outcome (admitted or shed)', ['site', 'outcome'], [0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5])
  const seconds = (m: Msg): number => typeof m.seconds === 'number' ? m.seconds : 0
  on('livery:pool:shed', m => {
    shed.inc({ reason: label(m.reason, 'unknown') })
    queueWait.observe(seconds(m), label(m.site, '-'), 'shed')
  })
  on('livery:pool:killed', () => killed.inc())
  on('livery:pool:queue-wait', m => queueWait.observe(seconds(m), label(m.site, '-'), 'admitted'))

  // --- purges ---
  const purges = metrics.counter('livery_purges_total', 'Purges applied by this process, by kind (url, prefix, tag, site, all) and mode (soft, hard)', ['kind', 'mode'])
  on('livery:cache:purge', m => {
    const sel = (typeof m.selector === 'object' && m.selector !== null ? m.selector : {}) as Record<string, unknown>
    const mode = m.soft === true ? 'soft' : 'hard'
    const kinds = [['urls', 'url'], ['prefixes', 'prefix'], ['tags', 'tag']] as const
    let counted = false
    for (const [field, kind] of kinds) {
      if (Array.isArray(sel[field]) && sel[field].length > 0) { purges.inc({ kind, mode }); counted = true }
    }
    if (sel.all === true) purges.inc({ kind: 'all', mode })
    else if (!counted && typeof sel.site === 'string' && sel.site !== '') purges.inc({ kind: 'site', mode })
  })
  if (parts.pool !== undefined) {
    const pool = parts.pool
    metrics.gauge('livery_requests_in_flight', 'Requests holding a pool slot, by site', ['site'], set => {
      const s = pool.stats()
      for (const site of parts.siteNames) set({ site }, s.inFlight[site] ?? 0)
    })
    metrics.gauge('livery_queue_length', 'Requests waiting for a pool slot, by site', ['site'], set => {
      const s = pool.stats()
      for (const site of parts.siteNames) set({ site }, s.queued[site] ?? 0)
    })
  }
  if (parts.transformPool !== undefined) {
    const tp = parts.transformPool
    metrics.gauge('livery_worker_pool_utilization', 'Share of transform threads busy (0-1)', [], set => set({}, tp.stats().utilization))
    metrics.gauge('livery_worker_pool_queue', 'Transforms waiting for a thread', [], set => set({}, tp.stats().queueSize))
  }

  // --- fetch pool ---
  const dedup = metrics.counter('livery_fetch_deduplicated_total', 'Fetches that joined a job already running for the same URL', [])
  const timeouts = metrics.counter('livery_fetch_timeouts_total', 'Fetch jobs that timed out, by phase', ['phase'])
  const fetchErrors = metrics.counter('livery_fetch_errors_total', 'Fetch jobs that failed', [])
  const fetchStale = metrics.counter('livery_fetch_stale_served_total', 'Stale copies served by the fetch pool, by reason', ['reason'])
  on('livery:fetch:deduplicated', () => dedup.inc())
  on('livery:fetch:timeout', m => timeouts.inc({ phase: label(m.phase, 'total') }))
  on('livery:fetch:error', () => fetchErrors.inc())
  on('livery:fetch:stale_served', m => fetchStale.inc({ reason: label(m.reason, 'wait') }))
  if (parts.fetchPool !== undefined) {
    const fp = parts.fetchPool
    metrics.gauge('livery_fetch_jobs_in_flight', 'Fetch jobs running', [], set => set({}, fp.stats().jobsInFlight))
    metrics.gauge('livery_fetch_jobs_queued', 'Fetch jobs waiting for a slot', [], set => set({}, fp.stats().jobsQueued))
    metrics.gauge('livery_fetch_circuit_open', '1 while the origin\'s circuit is open or half-open', ['origin'], set => {
      for (const [origin, state] of Object.entries(fp.stats().circuits)) set({ origin }, state === 'closed' ? 0 : 1)
    })
  }

  // --- theme ---
  const transformTime = metrics.histogram('livery_theme_transform_seconds', 'Time to theme one page, by outcome', ['outcome'], [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1])
  on('livery:theme:apply', m => transformTime.observe({ outcome: label(m.outcome, 'themed') }, typeof m.durationMs === 'number' ? m.durationMs / 1000 : 0))

  return () => {
    for (const [name, fn] of subs) unsubscribe(name, fn)
  }
}
