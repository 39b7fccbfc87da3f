/**
 * One entry file written crash-safely: into a temp file, then renamed into
 * place, so a `kill -9` leaves the old file, the new one, or a temp file the
 * next open deletes. Callback `fs` chained by hand rather than `fs/promises`:
 * a write is four thread-pool round trips (open, writev, close, rename), and
 * a `FileHandle` plus a promise per step made each of them cost more on the
 * event loop, which under a fill is the disk tier's bottleneck (issue 15).
 */
import { close, fsync, mkdir, open, rename, unlink, writev } from 'node:fs'

export interface AtomicWrite {
  readonly tmp: string
  readonly path: string
  readonly parts: readonly Buffer[]
  readonly length: number
  /** fsync before the rename. */
  readonly sync: boolean
}

/** Writes `w.parts` to `w.tmp` and renames it to `w.path`; on failure the temp file is removed. */
export function writeAtomic (w: AtomicWrite): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const fail = (err: Error): void => { unlink(w.tmp, () => { reject(err) }) }
    open(w.tmp, 'w', (err, fd) => {
      if (err !== null) { reject(err); return }
      const closed = (err: Error | null): void => {
        close(fd, (cerr) => {
          const e = err ?? cerr
          if (e !== null) { fail(e); return }
          rename(w.tmp, w.path, (rerr) => { if (rerr !== null) fail(rerr); else resolve() })
        })
      }
      const wrote = (err: Error | null, n: number): void => {
        if (err === null && n !== w.length) err = new Error(`short write to ${w.tmp}: ${n} of ${w.length} bytes`)
        if (err !== null || !w.sync) { closed(err); return }
        fsync(fd, closed)
      }
      writev(fd, w.parts as Buffer[], wrote)
    })
  })
}

/** Deletes a file; one that is already gone is not an error. */
export function unlinkQuiet (path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    unlink(path, (err) => { if (err === null || err.code === 'ENOENT') resolve(); else reject(err) })
  })
}

export function mkdirp (path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    mkdir(path, { recursive: true }, (err) => { if (err === null) resolve(); else reject(err) })
  })
}
