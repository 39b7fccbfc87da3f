/**
 * The disk tier's file format: a small head (storage deadline, key, url,
 * site, tags) with its own CRC, so the index can be rebuilt after a restart
 * by reading heads alone, followed by the entry in `encodeEntry` format,
 * whose CRC covers the rest. Anything torn or foreign throws.
 */
import { open } from 'node:fs/promises'
import { crc32 } from 'node:zlib'
import { type CacheEntry, encodeEntryParts } from './entry.ts'

const MAGIC = 0x4c564431 // "LVD1"

/**
 * The file for one entry as buffers to write in order (the body among them,
 * uncopied), and its length: the size is known before any byte is written.
 */
export function fileParts (key: string, entry: CacheEntry, expiresAt: number): { parts: Buffer[], length: number } {
  const m = entry.meta
  let headLength = 8 + 4 + 4 * 3 + Buffer.byteLength(key, 'utf8') + Buffer.byteLength(m.url, 'utf8') + Buffer.byteLength(m.site, 'utf8')
  for (const t of m.tags) headLength += 4 + Buffer.byteLength(t, 'utf8')
  const head = Buffer.allocUnsafe(8 + headLength + 4)
  let o = head.writeUInt32BE(MAGIC, 0)
  o = head.writeUInt32BE(headLength, o)
  o = head.writeDoubleBE(expiresAt, o)
  o = head.writeUInt32BE(m.tags.length, o)
  const str = (s: string): void => { const n = head.write(s, o + 4, 'utf8'); head.writeUInt32BE(n, o); o += 4 + n }
  str(key); str(m.url); str(m.site)
  for (const t of m.tags) str(t)
  head.writeUInt32BE(crc32(head.subarray(8, o)), o)
  const body = encodeEntryParts(entry)
  return { parts: [head, ...body.parts], length: head.length + body.length }
}

export interface FileHead {
  readonly expiresAt: number
  readonly key: string
  readonly url: string
  readonly site: string
  readonly tags: string[]
  /** Offset of the encoded entry. */
  readonly entryStart: number
}

/** Parses and checks the head; throws on anything torn or foreign. */
export function parseFile (buf: Buffer): FileHead {
  if (buf.length < 16 || buf.readUInt32BE(0) !== MAGIC) throw new Error('not a Livery disk cache file')
  const headLength = buf.readUInt32BE(4)
  const headEnd = 8 + headLength
  if (headLength < 12 || headEnd + 4 > buf.length) throw new Error('head is truncated')
  if (crc32(buf.subarray(8, headEnd)) !== buf.readUInt32BE(headEnd)) throw new Error('head checksum mismatch (torn write?)')
  const expiresAt = buf.readDoubleBE(8)
  const ntags = buf.readUInt32BE(16)
  let o = 20
  const str = (): string => {
    if (o + 4 > headEnd) throw new Error('head is truncated')
    const n = buf.readUInt32BE(o)
    if (o + 4 + n > headEnd) throw new Error('head is truncated')
    const s = buf.toString('utf8', o + 4, o + 4 + n)
    o += 4 + n
    return s
  }
  const key = str()
  const url = str()
  const site = str()
  if (ntags > headLength) throw new Error('bad tag count')
  const tags: string[] = []
  for (let i = 0; i < ntags; i++) tags.push(str())
  return { expiresAt, key, url, site, tags, entryStart: headEnd + 4 }
}

/** Reads only the head of a file (index rebuild after restart). */
export async function readHead (path: string, size: number): Promise<FileHead> {
  const fh = await open(path, 'r')
  try {
    const pre = Buffer.alloc(8)
    await fh.read(pre, 0, 8, 0)
    const headLength = pre.readUInt32BE(4)
    if (pre.readUInt32BE(0) !== MAGIC || 8 + headLength + 4 > size) throw new Error('head is truncated or foreign')
    const buf = Buffer.alloc(8 + headLength + 4)
    pre.copy(buf)
    await fh.read(buf, 8, headLength + 4, 8)
    return parseFile(buf)
  } finally {
    await fh.close()
  }
}
