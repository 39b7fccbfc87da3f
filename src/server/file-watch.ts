/**
 * `watch: true`: reload when the configuration file or a rules file changes
 * on disk, so a theme designer's save shows on the next request without a
 * SIGHUP. Folders are watched rather than files, because editors and
 * deploy tools replace a file (write a new one, rename it over the old),
 * which ends a watch on the file itself. Changes within `debounce` ms make
 * one reload.
 */
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { Logger } from '../log.ts'

export interface FileWatchOptions {
  readonly files: readonly string[]
  readonly onChange: () => void
  readonly logger: Logger
  /** @default 200 */
  readonly debounce?: number
}

/** Starts watching; the returned function stops, and says whether a change was still waiting out its debounce. */
export function watchFiles (opts: FileWatchOptions): () => boolean {
  const byDir = new Map<string, Set<string>>()
  for (const file of opts.files) {
    const dir = dirname(file)
    let names = byDir.get(dir)
    if (names === undefined) { names = new Set(); byDir.set(dir, names) }
    names.add(basename(file))
  }
  let timer: NodeJS.Timeout | undefined
  const fire = (): void => {
    if (timer !== undefined) clearTimeout(timer)
    timer = setTimeout(() => { timer = undefined; opts.onChange() }, opts.debounce ?? 200)
    timer.unref()
  }
  const watchers: FSWatcher[] = []
  for (const [dir, names] of byDir) {
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || names.has(String(name))) fire()
      })
      w.on('error', (err: Error) => opts.logger.warn({ dir, cause: err.message }, 'watching for changes failed; reload with SIGHUP'))
      watchers.push(w)
    } catch (err) {
      opts.logger.warn({ dir, cause: (err as Error).message }, 'cannot watch for changes; reload with SIGHUP')
    }
  }
  return () => {
    const pending = timer !== undefined
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    for (const w of watchers) w.close()
    return pending
  }
}
