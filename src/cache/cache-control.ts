/**
 * Cache-Control parsing (RFC 9111 §5.2). Our own code rather than
 * http-cache-semantics' parser, which splits on every comma (breaking
 * `no-cache="a, b"`), matches directive names case-sensitively and lets a
 * repeated directive silently win; RFC 9111 §5.2 says names are
 * case-insensitive, both token and quoted-string forms are accepted, and
 * §4.2.1 encourages treating conflicting freshness information as stale.
 *
 * Runs only at store time, on revalidation and for requests that carry
 * Cache-Control or Pragma: never on the plain hit path.
 */

/** A directive present more than once with different values (RFC 9111 §4.2.1). */
export const CONFLICT: unique symbol = Symbol('conflicting directive')

export type DirectiveValue = string | true | typeof CONFLICT
export type Directives = ReadonlyMap<string, DirectiveValue>

const empty: Directives = new Map()

/** The greatest delta-seconds value, which caches use for anything larger (RFC 9111 §1.2.2). */
export const MAX_DELTA = 2147483648

export function parseCacheControl (value: string | readonly string[] | undefined): Directives {
  if (value === undefined) return empty
  const text = typeof value === 'string' ? value : value.join(',')
  if (text.length === 0) return empty
  const out = new Map<string, DirectiveValue>()
  let i = 0
  const n = text.length
  while (i < n) {
    // skip separators and whitespace
    while (i < n && (text[i] === ',' || text[i] === ' ' || text[i] === '\t')) i++
    if (i >= n) break
    let j = i
    while (j < n && text[j] !== '=' && text[j] !== ',') j++
    const name = text.slice(i, j).trim().toLowerCase()
    let val: string | true = true
    if (j < n && text[j] === '=') {
      j++
      while (j < n && (text[j] === ' ' || text[j] === '\t')) j++
      if (text[j] === '"') {
        let s = ''
        j++
        while (j < n && text[j] !== '"') {
          if (text[j] === '\\' && j + 1 < n) j++
          s += text[j]
          j++
        }
        j++ // closing quote
        while (j < n && text[j] !== ',') j++
        val = s
      } else {
        const start = j
        while (j < n && text[j] !== ',') j++
        val = text.slice(start, j).trim()
      }
    }
    i = j
    if (name.length === 0) continue
    const prev = out.get(name)
    if (prev === undefined) out.set(name, val)
    else if (prev !== val) out.set(name, CONFLICT)
  }
  return out
}

/**
 * A delta-seconds argument in seconds, or undefined when missing or invalid
 * (no value, not digits, conflicting duplicates). Values too large clamp to
 * 2^31 as RFC 9111 §1.2.2 requires.
 */
export function deltaSeconds (d: Directives, name: string): number | undefined {
  const v = d.get(name)
  if (typeof v !== 'string' || !/^[0-9]+$/.test(v)) return undefined
  const n = Number(v)
  return n > MAX_DELTA ? MAX_DELTA : n
}

/** True when the directive is present in any form (with or without an argument). */
export function has (d: Directives, name: string): boolean {
  return d.has(name)
}

/** Field names listed in a qualified directive such as `no-cache="set-cookie"`, lowercased. */
export function fieldNames (d: Directives, name: string): string[] {
  const v = d.get(name)
  if (typeof v !== 'string' || v.length === 0) return []
  return v.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0)
}

/**
 * A lenient `Age` value in seconds (RFC 9111 §5.1): the first comma-separated
 * member is used, anything that is not a non-negative integer is ignored
 * (0), and very large values clamp to 2^31.
 */
export function parseAge (value: string | readonly string[] | undefined): number {
  if (value === undefined) return 0
  const first = (typeof value === 'string' ? value : value[0] ?? '').split(',')[0]?.trim() ?? ''
  if (!/^[0-9]+$/.test(first)) return 0
  const n = Number(first)
  return n > MAX_DELTA ? MAX_DELTA : n
}

/** An HTTP-date in ms since the epoch, or NaN when invalid. */
export function parseHttpDate (value: string | readonly string[] | undefined): number {
  if (value === undefined) return NaN
  const s = typeof value === 'string' ? value : value[0]
  if (s === undefined || s.length === 0) return NaN
  // Date.parse accepts IMF-fixdate, RFC 850 and asctime forms, which is what
  // RFC 9110 §5.6.7 asks recipients to accept; a bare number like "0" must
  // count as invalid (RFC 9111 §5.3), which Date.parse would read as a year.
  if (/^\s*-?[0-9]+\s*$/.test(s)) return NaN
  return Date.parse(s)
}
