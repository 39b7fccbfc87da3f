/**
 * What a reload reports, and which configuration keys it cannot apply: those
 * owned by what a reload keeps (sockets, cache tiers, the fetch pool,
 * threads, processes) take effect only after a restart.
 */
import type { Config } from '../config/types.ts'

export interface ReloadResult {
  /** False when the new configuration could not be used: the old one still runs. */
  readonly applied: boolean
  readonly problems: readonly string[]
  /** Keys that changed but take effect only after a restart (sockets, cache tiers, threads, processes). */
  readonly restartNeeded: readonly string[]
}

/** Parts of the configuration owned by what a reload keeps. */
const restartOnly: readonly (readonly [string, (c: Config) => unknown])[] = [
  ['listen', c => c.listen], ['admin.port', c => c.admin.port], ['admin.prefix', c => c.admin.prefix],
  ['cache', c => c.cache], ['fetch', c => c.fetch], ['processes', c => c.processes], ['threads', c => c.threads],
  ['metrics', c => c.metrics], ['log.level', c => c.log.level],
  ['pool.maxEventLoopDelay', c => c.pool.maxEventLoopDelay], ['pool.maxHeap', c => c.pool.maxHeap],
]

export function restartOnlyKeys (old: Config, next: Config): string[] {
  return restartOnly.filter(([, get]) => JSON.stringify(get(old)) !== JSON.stringify(get(next))).map(([key]) => key)
}
