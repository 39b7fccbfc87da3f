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
 */

import { getHeapStatistics } from 'node:v8'

type Gc = (opts: { type: 'minor' }) => void

export interface BufferReclaimer { stop (): void }

export function startBufferReclaimer (threshold = 8 * 1024 * 1024, interval = 10): BufferReclaimer {
  const gc = (globalThis as { gc?: Gc }).gc
  if (typeof gc !== 'function') return { stop () {} }
  // getHeapStatistics() costs under a microsecond (memoryUsage() reads /proc),
  // so sampling every 10 ms keeps up with a loopback-speed stream.
  const external = (): number => getHeapStatistics().external_memory
  let last = external()
  const timer = setInterval(() => {
    const now = external()
    if (now - last > threshold) {
      gc({ type: 'minor' })
      last = external()
    } else if (now < last) last = now
  }, interval)
  timer.unref()
  return { stop () { clearInterval(timer) } }
}
