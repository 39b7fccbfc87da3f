/**
 * Returns the memory of dead socket buffers promptly while large bodies stream.
 *
 * Every socket read is a fresh 64 KB buffer whose memory lives outside V8's
 * heap; V8 only collects it after enough small JS objects fill the young
 * generation, or after external memory grew by ~64 MB. A proxy streaming a
 * 50 MB body allocates little JS per chunk, so RSS climbs by tens of MB of
 * garbage before a collection. When Node runs with --expose-gc (src/node-flags.ts),
 * this samples external memory every 10 ms and runs a minor GC once it grew by
 * `threshold` bytes: a scavenge costs well under a millisecond and frees
 * the buffers whose wrappers died young; when that was not enough (the
 * wrappers were promoted), a concurrent major GC follows.
 */

import { getHeapStatistics } from 'node:v8'

type MinorGc = (opts: { type: 'minor' | 'major', execution?: 'sync' | 'async' }) => void

export interface BufferReclaimer { stop (): void }

export function startBufferReclaimer (threshold = 8 * 1024 * 1024, interval = 10): BufferReclaimer {
  const gc = (globalThis as { gc?: MinorGc }).gc
  if (typeof gc !== 'function') return { stop () {} }
  // getHeapStatistics() costs under a microsecond (memoryUsage() reads /proc),
  // so sampling every 10 ms keeps up with a loopback-speed stream.
  const external = (): number => getHeapStatistics().external_memory
  let last = external()
  const timer = setInterval(() => {
    const now = external()
    if (now - last > threshold) {
      gc({ type: 'minor' })
      // On a busy machine chunks wait longer for their sockets and outlive the
      // young generation; then only a major GC frees them. Started concurrent
      // ('async'), it costs the event loop little.
      if (external() - last > threshold) gc({ type: 'major', execution: 'async' })
      last = external()
    } else if (now < last) last = now
  }, interval)
  timer.unref()
  return { stop () { clearInterval(timer) } }
}
