/**
 * Byte ranges answered from a complete stored response (RFC 9110 §14), as
 * Varnish does: one range per request; several ranges are ignored and the
 * whole response is sent (a server may ignore Range, §14.2), which avoids
 * multipart/byteranges and the cost of many small ranges.
 * Runs only for requests that carry Range: never on the plain hit path.
 */
import type { CacheEntry } from './entry.ts'
import { parseHttpDate } from './cache-control.ts'
import { headerOf } from './policy.ts'

export type RangeAnswer =
  | { readonly kind: 'partial', readonly start: number, readonly end: number }
  | { readonly kind: 'unsatisfiable' }
  /** Serve the whole response: no usable single range. */
  | { readonly kind: 'full' }

const kFull: RangeAnswer = { kind: 'full' }
const kUnsatisfiable: RangeAnswer = { kind: 'unsatisfiable' }
const single = /^bytes=[ \t]*(?:([0-9]+)-([0-9]*)|-([0-9]+))[ \t]*$/i

/** A `Range` value against a representation of `length` bytes (§14.1.2, §14.2). */
export function parseRange (value: string, length: number): RangeAnswer {
  const m = single.exec(value)
  if (m === null) return kFull // several ranges, another unit, or invalid syntax: ignored
  if (m[3] !== undefined) {
    const suffix = Number(m[3])
    if (suffix === 0 || length === 0) return kUnsatisfiable
    return { kind: 'partial', start: Math.max(0, length - suffix), end: length - 1 }
  }
  const start = Number(m[1])
  if (m[2] !== '' && Number(m[2]) < start) return kFull // invalid range-spec: the field is ignored
  if (start >= length) return kUnsatisfiable
  const end = m[2] === '' ? length - 1 : Math.min(Number(m[2]), length - 1)
  return { kind: 'partial', start, end }
}

/**
 * Whether `If-Range` lets the Range apply (RFC 9110 §13.1.5): an entity-tag
 * must match the stored one by strong comparison; a date must equal the
 * stored Last-Modified exactly, and that must be strong (at least a second
 * older than the response's Date).
 */
export function ifRangeMatches (entry: CacheEntry, value: string): boolean {
  const v = value.trim()
  if (v.startsWith('"') || v.startsWith('W/')) {
    const etag = headerOf(entry, 'etag')
    return etag !== undefined && !v.startsWith('W/') && !etag.startsWith('W/') && etag === v
  }
  const date = parseHttpDate(v)
  const lm = headerOf(entry, 'last-modified')
  if (Number.isNaN(date) || lm === undefined || parseHttpDate(lm) !== date) return false
  const served = parseHttpDate(headerOf(entry, 'date'))
  return !Number.isNaN(served) && served - date >= 1000
}
