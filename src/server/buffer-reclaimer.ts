/**
 * Returns the memory of dead socket buffers promptly while large bodies stream.
 *
 * Every socket read is a fresh 64 KB buffer whose memory lives outside V8's
 * heap; V8 only collects it after enough small JS objects fill the young
 * generation, or after external memory grew by ~64 MB. A proxy streaming a
 * 50 MB body allocates little JS per chunk, so RSS climbs by tens of MB of
 * garbage before a collection. When Node runs with --expose-gc (src/node-flags.ts),
 * this samples external memory every 10 ms and runs a minor GC (a scavenge)
 * once it grew by `threshold` bytes; that frees the buffers whose wrappers died
 * young.
 *
 * It never forces a major GC. An earlier version followed up with
 * `gc({ type: 'major', execution: 'async' })` when the scavenge freed too
 * little, believing it concurrent: it is not. 'async' only defers the same
 * atomic mark-compact to a task, which then blocked the event loop for
 * 50-680 ms; under pass load it fired about 3.5 times a second and tripled
 * the CPU per request (issue 15). It also fired while the cache filled, where
 * the growth is live cached pages that no collection can free. Buffers whose
 * wrappers were promoted are left to V8's own scheduling, which runs its
 * marking concurrently.
 *
 * A scavenge only pays when the growth was young garbage. While the cache
 * fills, the growth is live stored pages; once the memory tier is full, it is
 * new pages replacing evicted ones, whose bodies died old. A forced
 * scavenge frees neither, and it promotes the objects of every request in
 * flight, so the old generation filled faster: a cold-miss fill ran a
 * mark-compact every 0.5-1 s against every 2.5-8 s without the forced
 * scavenges (issue 15). So each forced scavenge is judged by the
 * ArrayBuffer memory it returned, read just after it and at the next sample
 * (V8's external-memory figure is only brought down lazily; the allocator's
 * own count drops once the sweeper has run): one that returned less than a
 * quarter of the growth doubles the growth the next one waits for (up to
 * `maxThreshold`, where V8 collects on its own), one that returned more
 * resets it to `threshold`. A quarter, not a half: on a fast stream the next
 * sample already holds 10 ms of new buffers.
 */

import { getHeapStatistics } from 'node:v8'

type Gc = (opts: { type: 'minor' }) => void

export interface BufferReclaimer {
  stop (): void
  /** One sample (the timer's work); tests call it directly. */
  check (): void
  /** Scavenges forced so far. */
  readonly forced: number
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
   * (V8's `external_memory`) and the ArrayBuffer memory a scavenge is judged
   * by (`process.memoryUsage().arrayBuffers`, read only around forced scavenges).
   */
  readonly gc?: Gc
  readonly external?: () => number
  readonly buffers?: () => number
}

export function startBufferReclaimer (opts: BufferReclaimerOptions = {}): BufferReclaimer {
  const gc = opts.gc ?? (globalThis as { gc?: Gc }).gc
  const base = opts.threshold ?? 8 * 1024 * 1024
  const max = opts.maxThreshold ?? 64 * 1024 * 1024
  // getHeapStatistics() costs under a microsecond (memoryUsage() reads /proc),
  // so sampling every 10 ms keeps up with a loopback-speed stream.
  const external = opts.external ?? ((): number => getHeapStatistics().external_memory)
  const buffers = opts.buffers ?? ((): number => process.memoryUsage().arrayBuffers)
  let threshold = base
  let forced = 0
  let last = external()
  /** The last forced scavenge, judged at the next sample: buffer memory before it, the lowest reading since, and the growth it was forced for. */
  let judging: { before: number, low: number, growth: number } | undefined
  const check = (): void => {
    if (gc === undefined) return
    const now = external()
    if (judging !== undefined) {
      const freed = judging.before - Math.min(judging.low, buffers())
      threshold = freed * 4 < judging.growth ? Math.min(threshold * 2, max) : base
      judging = undefined
    }
    if (now - last > threshold) {
      const before = buffers()
      gc({ type: 'minor' })
      forced++
      judging = { before, low: buffers(), growth: now - last }
      last = external()
    } else if (now < last) last = now
  }
  const timer = gc === undefined ? undefined : setInterval(check, opts.interval ?? 10)
  timer?.unref()
  return {
    stop () { clearInterval(timer) },
    check,
    get forced () { return forced },
    get threshold () { return threshold },
  }
}
