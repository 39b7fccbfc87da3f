/**
 * Returns the memory of dead socket buffers promptly while large bodies stream.
 *
 * Every socket read is a fresh 64 KB buffer whose memory lives outside V8's
 * heap; V8 only collects it after enough small JS objects fill the young
 * generation, or after external memory grew by ~64 MB. A proxy streaming a
 * 50 MB body allocates little JS per chunk, so RSS climbs by tens of MB of
 * garbage before a collection. When Node runs with --expose-gc (src/node-flags.ts),
 * this samples V8's external-memory figure every 10 ms and asks for a minor
 * GC (a scavenge) once it grew by `threshold` bytes; that frees the buffers
 * whose wrappers died young.
 *
 * It never asks for a major GC, and it does not ask for a scavenge while V8
 * is incrementally marking: `gc({ type: 'minor' })` during marking makes V8
 * finalize the marking at once ("testing; Incremental marking forced
 * finalization" under --trace-gc), a mark-compact of 17-124 ms with almost
 * none of its marking done incrementally, measured on Node 24 in a process
 * growing its old generation. Marking is known from Node's `gc` performance
 * entries: an 'incremental' entry when V8 starts marking, a 'major' one when
 * the mark-compact ends. Entries arrive a turn or so late, so a scavenge
 * requested in the first moments of a marking can still finalize it; V8's
 * own marking is not otherwise disturbed. An earlier version followed up
 * with `gc({ type: 'major', execution: 'async' })`, believing it concurrent:
 * it is not. 'async' only defers the same atomic mark-compact to a task,
 * which then blocked the event loop for 50-680 ms (issue 15).
 *
 * Each sample is one `v8.getHeapStatistics()` call, a few microseconds.
 * `process.memoryUsage()` is not used: it reads /proc for the RSS, which
 * cost 0.8-1.2 ms a call in a loaded gateway.
 *
 * A scavenge only pays when the growth was young garbage. While the cache
 * fills, the growth is live stored pages; once the memory tier is full, it is
 * new pages replacing evicted ones, whose bodies died old. A forced
 * scavenge frees neither, and it promotes the objects of every request in
 * flight, so the old generation filled faster: a cold-miss fill ran a
 * mark-compact every 0.5-1 s against every 2.5-8 s without the forced
 * scavenges (issue 15). So each forced scavenge is judged, when the growth
 * next reaches the threshold, by how far the external-memory figure fell in
 * between. V8 brings that figure down lazily, at the first ArrayBuffer
 * allocated after its sweeper freed the dead ones, so it is read at every
 * sample until then, not just after the scavenge. One that returned less
 * than a quarter of its growth doubles the growth the next one waits for (up
 * to `maxThreshold`, where V8 collects on its own), one that returned more
 * resets it to `threshold`. A quarter, not a half: on a fast stream the
 * lowest sample already holds up to 10 ms of new buffers.
 */

import { PerformanceObserver, constants } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'

type Gc = (opts: { type: 'minor' }) => void

export interface BufferReclaimer {
  stop (): void
  /** One sample (the timer's work); tests call it directly. */
  check (): void
  /** Scavenges forced so far. */
  readonly forced: number
  /** Scavenges not forced because V8 was marking. */
  readonly deferred: number
  /** The growth, in bytes, the next forced scavenge waits for. */
  readonly threshold: number
}

export interface BufferReclaimerOptions {
  /** External-memory growth that forces a scavenge, bytes. @default 8 MiB */
  readonly threshold?: number
  /** Largest growth waited for after scavenges that did not pay, bytes. @default 64 MiB */
  readonly maxThreshold?: number
  /** Sampling interval, ms. @default 10 */
  readonly interval?: number
  /**
   * Test hatches: the collector (default `globalThis.gc`, present with
   * --expose-gc), the external-memory reading sampled every interval
   * (V8's `external_memory`) and whether V8 is incrementally marking
   * (default: from Node's `gc` performance entries).
   */
  readonly gc?: Gc
  readonly external?: () => number
  readonly marking?: () => boolean
}

/** Whether V8 is incrementally marking, as far as the `gc` performance entries delivered so far tell. */
function watchMarking (): { marking: () => boolean, stop: () => void } {
  let marking = false
  const observer = new PerformanceObserver(list => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { readonly detail?: { readonly kind?: number } }).detail?.kind
      if (kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) marking = true
      else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) marking = false
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  return { marking: () => marking, stop: () => observer.disconnect() }
}

export function startBufferReclaimer (opts: BufferReclaimerOptions = {}): BufferReclaimer {
  const gc = opts.gc ?? (globalThis as { gc?: Gc }).gc
  const base = opts.threshold ?? 8 * 1024 * 1024
  const max = opts.maxThreshold ?? 64 * 1024 * 1024
  const external = opts.external ?? ((): number => getHeapStatistics().external_memory)
  const watcher = gc === undefined || opts.marking !== undefined ? undefined : watchMarking()
  const marking = opts.marking ?? watcher?.marking ?? ((): boolean => false)
  let threshold = base
  let forced = 0
  let deferred = 0
  let last = external()
  /** The last forced scavenge, judged when the growth next reaches the threshold: the reading before it, the lowest since, and the growth it was forced for. */
  let judging: { before: number, low: number, growth: number } | undefined
  const check = (): void => {
    if (gc === undefined) return
    const now = external()
    if (judging !== undefined && now < judging.low) judging.low = now
    if (now < last) last = now
    if (now - last <= threshold) return
    if (judging !== undefined) {
      const freed = judging.before - judging.low
      threshold = freed * 4 < judging.growth ? Math.min(threshold * 2, max) : base
      judging = undefined
      if (now - last <= threshold) return
    }
    if (marking()) { deferred++; return }
    gc({ type: 'minor' })
    forced++
    judging = { before: now, low: now, growth: now - last }
    last = now
  }
  const timer = gc === undefined ? undefined : setInterval(check, opts.interval ?? 10)
  timer?.unref()
  return {
    stop () { clearInterval(timer); watcher?.stop() },
    check,
    get forced () { return forced },
    get deferred () { return deferred },
    get threshold () { return threshold },
  }
}
