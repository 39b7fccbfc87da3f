/**
 * Rebuilding the disk tier's index when it opens: file names and sizes first
 * (enough to serve gets and account bytes), then each file's head (key, url,
 * site, tags, deadline) in the background, for purges. LRU order after a
 * restart is modification time.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { readHead } from './disk-file.ts'
import { type FileRecord, hashKey } from './disk-index.ts'

export const SUFFIX = '.e'

/** `<dir>/<h0h1>/<hash>.e` */
export function entryPath (dir: string, hash: string): string {
  return join(dir, hash.slice(0, 2), hash + SUFFIX)
}

export interface Scanned {
  /** Records without heads (`key` ''), oldest first. */
  readonly records: FileRecord[]
  /** Subdirectories that exist. */
  readonly dirs: string[]
}

/**
 * Lists the entry files under `dir`, after clearing the temp files of
 * writes a crash interrupted (`clearTemp`).
 */
export async function scanDirectory (dir: string, tmp: string): Promise<Scanned> {
  await clearTemp(tmp)
  const found: Array<{ hash: string, size: number, mtime: number }> = []
  const dirs: string[] = []
  for (const sub of await readdir(dir)) {
    if (sub.length !== 2) continue
    let names: string[]
    try { names = await readdir(join(dir, sub)) } catch { continue }
    dirs.push(sub)
    for (const name of names) {
      const hash = name.slice(0, -SUFFIX.length)
      if (!name.endsWith(SUFFIX) || hash.length !== 64 || !hash.startsWith(sub)) continue
      try {
        const st = await stat(join(dir, sub, name))
        found.push({ hash, size: st.size, mtime: st.mtimeMs })
      } catch { /* deleted while scanning: nothing to index */ }
    }
  }
  found.sort((a, b) => a.mtime - b.mtime)
  return { records: found.map(f => ({ hash: f.hash, size: f.size, key: '', url: '', site: '', tags: [], expiresAt: 0 })), dirs }
}

/**
 * The temp directory of one store is `<dir>/tmp/<pid>.<id>`: the processes of
 * a gateway share the directory, and a worker restarted after a crash used to
 * empty all of `tmp/`, failing the writes its siblings had in flight there
 * (or failing to open, when a sibling's temp file appeared during the
 * removal). Removed: `tmp` itself, files of the old layout, and the
 * directories of processes that are gone.
 */
async function clearTemp (tmp: string): Promise<void> {
  const root = dirname(tmp)
  await mkdir(root, { recursive: true })
  for (const name of await readdir(root)) {
    const pid = /^(\d+)\./.exec(name)?.[1]
    if (name !== basename(tmp) && pid !== undefined && alive(Number(pid))) continue
    await rm(join(root, name), { recursive: true, force: true })
  }
  await mkdir(tmp, { recursive: true })
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: alive, another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export interface ReadHeadsOptions {
  readonly dir: string
  /** Records whose heads to read. */
  readonly records: readonly FileRecord[]
  /** False once the record was evicted or replaced meanwhile (skip it). */
  readonly current: (rec: FileRecord) => boolean
  readonly stopped: () => boolean
  /** The file is gone. */
  readonly missing: (rec: FileRecord) => void
  /** The head is torn, foreign, or names another key. */
  readonly corrupt: (rec: FileRecord, err: unknown) => void
}

/** Fills in each record's head from its file, four files at a time. */
export async function readHeads (opts: ReadHeadsOptions): Promise<void> {
  const todo = opts.records.filter(r => r.key === '')
  const worker = async (): Promise<void> => {
    for (let rec = todo.pop(); rec !== undefined; rec = todo.pop()) {
      if (opts.stopped()) return
      if (!opts.current(rec)) continue
      try {
        const head = await readHead(entryPath(opts.dir, rec.hash), rec.size)
        if (hashKey(head.key) !== rec.hash) throw new Error('file name does not match its key')
        rec.key = head.key; rec.url = head.url; rec.site = head.site; rec.tags = head.tags; rec.expiresAt = head.expiresAt
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') opts.missing(rec)
        else opts.corrupt(rec, err)
      }
    }
  }
  await Promise.all([worker(), worker(), worker(), worker()])
}
