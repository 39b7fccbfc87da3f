/**
 * Persistence of fetched copies, so a gateway restarted while the theme
 * server is down still has something to theme with.
 *
 * One file per URL, named by the SHA-256 of the URL. Binary layout:
 *
 *   0  4  magic "LVFE"
 *   4  1  format version (1)
 *   5  3  reserved, zero
 *   8  4  meta length M (uint32 BE)
 *  12  4  body length B (uint32 BE)
 *  16 32  SHA-256 of the M + B bytes that follow
 *  48  M  meta: UTF-8 JSON {url, status, headers, version, fetchedAt, freshUntil}
 *  48+M B body bytes, as received (decoded)
 *
 * Files are written to a temp name and renamed, so a reader sees the old file
 * or the new one; the checksum catches anything else (a torn write after a
 * crash, a flipped bit). Writes for one URL are chained so an older copy can
 * never land after a newer one. The directory is bounded by the pool, which
 * removes a file when its entry leaves the in-memory cache.
 */
import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { wrapError, liveryError, type LiveryError } from '../errors.ts'
import type { FetchedResource } from './types.ts'

const magic = Buffer.from('LVFE', 'latin1')
const formatVersion = 1
const headerSize = 48
const suffix = '.lvf'
const tmpSuffix = '.tmp'

export interface LoadResult {
  readonly resources: FetchedResource[]
  readonly corrupt: Array<{ file: string, error: LiveryError }>
}

export class DiskStore {
  readonly #directory: string
  readonly #pending = new Map<string, Promise<void>>()
  #tmpCounter = 0

  constructor (directory: string) {
    this.#directory = directory
  }

  get directory (): string { return this.#directory }

  /** Reads every entry back; corrupt files and leftover temp files are deleted. */
  async load (): Promise<LoadResult> {
    await mkdir(this.#directory, { recursive: true })
    const resources: FetchedResource[] = []
    const corrupt: LoadResult['corrupt'] = []
    for (const name of await readdir(this.#directory)) {
      const file = join(this.#directory, name)
      if (name.endsWith(tmpSuffix)) {
        // A leftover of a write cut short by a crash; the checksum never saw it.
        await unlink(file).catch(() => undefined)
        continue
      }
      if (!name.endsWith(suffix)) continue
      try {
        const resource = decodeEntry(await readFile(file))
        if (fileName(resource.url) !== name) throw new Error('the file name does not match the URL it holds')
        resources.push(resource)
      } catch (err) {
        corrupt.push({ file, error: wrapError('LIVERY_ERR_CACHE_ENTRY_CORRUPT', err, file, err) })
        // Removed so it is reported once, not at every start; if it cannot be
        // removed it is reported again next time, which is the right signal.
        await unlink(file).catch(() => undefined)
      }
    }
    return { resources, corrupt }
  }

  /** Writes (replaces) the copy of `resource.url`; rejects on I/O failure. */
  write (resource: FetchedResource): Promise<void> {
    return this.#chain(resource.url, async () => {
      const target = join(this.#directory, fileName(resource.url))
      const tmp = `${target}.${process.pid}.${this.#tmpCounter++}${tmpSuffix}`
      try {
        await writeFile(tmp, encodeEntry(resource))
        await rename(tmp, target)
      } catch (err) {
        await unlink(tmp).catch(ignoreMissing)
        throw err
      }
    })
  }

  remove (url: string): Promise<void> {
    return this.#chain(url, () => unlink(join(this.#directory, fileName(url))).catch(ignoreMissing))
  }

  /** Settles once every write and removal started so far has finished. */
  async flush (): Promise<void> {
    await Promise.allSettled([...this.#pending.values()])
  }

  #chain (url: string, op: () => Promise<void>): Promise<void> {
    const prev = this.#pending.get(url) ?? Promise.resolve()
    const next = prev.then(op, op)
    // The map holds only unfinished chains: the last link removes itself.
    const settled = next.then(() => undefined, () => undefined).then(() => {
      if (this.#pending.get(url) === settled) this.#pending.delete(url)
    })
    this.#pending.set(url, settled)
    return next
  }
}

export function fileName (url: string): string {
  return createHash('sha256').update(url).digest('hex') + suffix
}

export function encodeEntry (r: FetchedResource): Buffer {
  const meta = Buffer.from(JSON.stringify({
    url: r.url, status: r.status, headers: r.headers, version: r.version, fetchedAt: r.fetchedAt, freshUntil: r.freshUntil,
  }), 'utf8')
  const header = Buffer.alloc(headerSize)
  magic.copy(header, 0)
  header.writeUInt8(formatVersion, 4)
  header.writeUInt32BE(meta.length, 8)
  header.writeUInt32BE(r.body.length, 12)
  createHash('sha256').update(meta).update(r.body).digest().copy(header, 16)
  return Buffer.concat([header, meta, r.body])
}

export function decodeEntry (buf: Buffer): FetchedResource {
  if (buf.length < headerSize) throw liveryError('LIVERY_ERR_CACHE_ENTRY_CORRUPT', 'fetch entry', `only ${buf.length} bytes`)
  if (!buf.subarray(0, 4).equals(magic)) throw liveryError('LIVERY_ERR_CACHE_ENTRY_CORRUPT', 'fetch entry', 'bad magic')
  if (buf.readUInt8(4) !== formatVersion) throw liveryError('LIVERY_ERR_CACHE_ENTRY_CORRUPT', 'fetch entry', `unknown format version ${buf.readUInt8(4)}`)
  const metaLength = buf.readUInt32BE(8)
  const bodyLength = buf.readUInt32BE(12)
  if (buf.length !== headerSize + metaLength + bodyLength) {
    throw liveryError('LIVERY_ERR_CACHE_ENTRY_CORRUPT', 'fetch entry', `length ${buf.length} does not match the header (${headerSize + metaLength + bodyLength})`)
  }
  const sum = createHash('sha256').update(buf.subarray(headerSize)).digest()
  if (!sum.equals(buf.subarray(16, 48))) throw liveryError('LIVERY_ERR_CACHE_ENTRY_CORRUPT', 'fetch entry', 'checksum mismatch')
  const meta: unknown = JSON.parse(buf.subarray(headerSize, headerSize + metaLength).toString('utf8'))
  if (!isMeta(meta)) throw liveryError('LIVERY_ERR_CACHE_ENTRY_CORRUPT', 'fetch entry', 'meta block has the wrong shape')
  // Copy the body out so the whole file buffer is not kept alive by a slice.
  const body = Buffer.from(buf.subarray(headerSize + metaLength))
  return { ...meta, body }
}

type Meta = Omit<FetchedResource, 'body'>

function isMeta (v: unknown): v is Meta {
  if (typeof v !== 'object' || v === null) return false
  const m = v as Record<string, unknown>
  if (typeof m.url !== 'string' || typeof m.status !== 'number' || typeof m.version !== 'string') return false
  if (typeof m.fetchedAt !== 'number' || typeof m.freshUntil !== 'number') return false
  if (typeof m.headers !== 'object' || m.headers === null) return false
  return Object.values(m.headers).every(h => typeof h === 'string')
}

function ignoreMissing (err: unknown): void {
  // Removing a file that is already gone is the outcome we wanted.
  if ((err as { code?: unknown }).code !== 'ENOENT') throw err
}
