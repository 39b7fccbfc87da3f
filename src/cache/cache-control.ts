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
export interface Directives extends ReadonlyMap<string, DirectiveValue> {
  /** Directives whose argument was a quoted-string: delta-seconds must be a token (RFC 9111 §1.2.2, §5.2.2.1). */
  readonly quoted: ReadonlySet<string>
}

class DirectiveMap extends Map<string, DirectiveValue> implements Directives {
  readonly quoted = new Set<string>()
}

const empty: Directives = new DirectiveMap()

/** The greatest delta-seconds value, which caches use for anything larger (RFC 9111 §1.2.2). */
export const MAX_DELTA = 2147483648

/**
 * Parsed values by their text. An upstream sends few distinct Cache-Control
 * values, and every pass and miss parsed its response's (and a request's own)
 * anew: a Map and a Set each time (issue 15). Bounded in count and in the
 * length of what is kept; a parsed value is never modified after parsing.
 */
const parsed = new Map<string, Directives>()
const maxParsed = 256
const maxParsedLength = 256

export function parseCacheControl (value: string | readonly string[] | undefined): Directives {
  if (value === undefined) return empty
  const text = typeof value === 'string' ? value : value.join(',')
  if (text.length === 0) return empty
  const known = parsed.get(text)
  if (known !== undefined) return known
  const out = parseDirectives(text)
  if (text.length <= maxParsedLength) {
    if (parsed.size >= maxParsed) parsed.clear()
    parsed.set(text, out)
  }
  return out
}

function parseDirectives (text: string): Directives {
  const out = new DirectiveMap()
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
    let quoted = false
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
        quoted = true
      } else {
        const start = j
        while (j < n && text[j] !== ',') j++
        val = text.slice(start, j).trim()
      }
    }
    i = j
    if (name.length === 0) continue
    if (quoted) out.quoted.add(name)
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
  if (typeof v !== 'string' || !/^[0-9]+$/.test(v) || d.quoted.has(name)) return undefined
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

const months: Readonly<Record<string, number>> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 }
const time = '([0-9]{2}):([0-9]{2}):([0-9]{2})'
const month = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)'
// The three forms of RFC 9110 §5.6.7, exactly: one space each, case-sensitive names, GMT only.
const imfFixdate = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) ${month} ([0-9]{4}) ${time} GMT$`)
const rfc850 = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), ([0-9]{2})-${month}-([0-9]{2}) ${time} GMT$`)
const asctime = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${month} ([0-9 ][0-9]) ${time} ([0-9]{4})$`)

/**
 * An HTTP-date in ms since the epoch, or NaN when it is not one of the three
 * forms of RFC 9110 §5.6.7. Strict on purpose: RFC 9111 §5.3 says an invalid
 * Expires means "already expired", and a lenient parser (Date.parse reads
 * other time zones, one-digit hours, dashes, "0") would make such a response
 * fresh. Only whitespace around the value is forgiven (it is not part of the field value).
 */
export function parseHttpDate (value: string | readonly string[] | undefined): number {
  if (value === undefined) return NaN
  if (typeof value !== 'string' && value.length !== 1) return NaN
  const s = (typeof value === 'string' ? value : value[0]).trim()
  let m = imfFixdate.exec(s)
  if (m !== null) return utc(Number(m[3]), months[m[2]], Number(m[1]), m[4], m[5], m[6])
  m = rfc850.exec(s)
  if (m !== null) {
    // Two-digit years more than 50 years ahead are in the past century (RFC 9110 §5.6.7).
    const nowYear = new Date().getUTCFullYear()
    let year = Math.floor(nowYear / 100) * 100 + Number(m[3])
    if (year > nowYear + 50) year -= 100
    return utc(year, months[m[2]], Number(m[1]), m[4], m[5], m[6])
  }
  m = asctime.exec(s)
  if (m !== null) return utc(Number(m[6]), months[m[1]], Number(m[2].trim()), m[3], m[4], m[5])
  return NaN
}

function utc (year: number, mon: number, day: number, hh: string, mm: string, ss: string): number {
  const h = Number(hh)
  const mi = Number(mm)
  const se = Number(ss)
  if (day < 1 || day > 31 || h > 23 || mi > 59 || se > 60) return NaN
  const t = Date.UTC(year, mon, day, h, mi, Math.min(se, 59))
  // 31 Feb and the like roll over into the next month: not a date.
  return new Date(t).getUTCDate() === day ? t : NaN
}

// --- targeted fields (RFC 9213) ---------------------------------------------

const sfKey = /^[a-z*][a-z0-9_.*-]*$/
const sfToken = /^[A-Za-z*][!#$%&'*+.^_`|~:/A-Za-z0-9-]*$/
const sfNumber = /^-?[0-9]{1,15}(\.[0-9]{1,3})?$/

/**
 * A targeted cache-control field (RFC 9213 §2.1), parsed as the Structured
 * Fields Dictionary it is (RFC 8941 §3.2), into the same directive map as
 * Cache-Control. Undefined when the value is empty or not a valid
 * dictionary: the field is then ignored and Cache-Control applies (§2.2).
 * Parameters on members are allowed and ignored. `name=?0` is absent.
 */
export function parseTargeted (value: string | readonly string[] | undefined): Directives | undefined {
  // Checked before the parser is entered: its nested functions and their
  // shared context are allocated on entry, before any early return, and most
  // responses carry neither targeted field it reads (two calls per fill).
  if (value === undefined) return undefined
  return parseDictionary(typeof value === 'string' ? value : value.join(','))
}

function parseDictionary (text: string): Directives | undefined {
  const out = new DirectiveMap()
  let i = 0
  const n = text.length
  const ows = (): void => { while (i < n && (text[i] === ' ' || text[i] === '\t')) i++ }
  ows()
  if (i >= n) return undefined
  while (i < n) {
    let j = i
    while (j < n && /[a-z0-9_.*-]/.test(text[j])) j++
    const key = text.slice(i, j)
    if (!sfKey.test(key)) return undefined
    i = j
    let val: string | true | undefined = true
    let quoted = false
    if (text[i] === '=') {
      i++
      const item = bareItem()
      if (item === undefined) return undefined
      val = item.value
      quoted = item.quoted
    }
    // parameters: ;key[=bare-item]
    while (text[i] === ';') {
      i++
      ows()
      j = i
      while (j < n && /[a-z0-9_.*-]/.test(text[j])) j++
      if (!sfKey.test(text.slice(i, j))) return undefined
      i = j
      if (text[i] === '=') { i++; if (bareItem() === undefined) return undefined }
    }
    // A later duplicate key overrides an earlier one (RFC 8941 §4.2.2).
    out.delete(key)
    out.quoted.delete(key)
    if (val !== undefined) { out.set(key, val); if (quoted) out.quoted.add(key) }
    ows()
    if (i >= n) break
    if (text[i] !== ',') return undefined
    i++
    ows()
    if (i >= n) return undefined // trailing comma
  }
  return out

  function bareItem (): { value: string | true | undefined, quoted: boolean } | undefined {
    if (text[i] === '"') {
      let s = ''
      i++
      while (i < n && text[i] !== '"') {
        const c = text.charCodeAt(i)
        if (c < 0x20 || c > 0x7e) return undefined
        if (text[i] === '\\') { i++; if (text[i] !== '"' && text[i] !== '\\') return undefined }
        s += text[i]
        i++
      }
      if (i >= n) return undefined
      i++
      return { value: s, quoted: true }
    }
    if (text[i] === '?') {
      const b = text[i + 1]
      if (b !== '0' && b !== '1') return undefined
      i += 2
      return { value: b === '1' ? true : undefined, quoted: false }
    }
    let j = i
    while (j < n && text[j] !== ',' && text[j] !== ';' && text[j] !== ' ' && text[j] !== '\t') j++
    const raw = text.slice(i, j)
    if (!sfNumber.test(raw) && !sfToken.test(raw) && !/^:[A-Za-z0-9+/=]*:$/.test(raw)) return undefined
    i = j
    return { value: raw, quoted: false }
  }
}

/**
 * `Surrogate-Control` (W3C Edge Architecture 1.0, as Varnish and Fastly read
 * it): Cache-Control syntax; a `;target` suffix on a directive is ignored (it
 * applies to us), and `max-age=N+M` keeps N. Undefined when empty.
 */
export function parseSurrogateControl (value: string | readonly string[] | undefined): Directives | undefined {
  if (value === undefined) return undefined
  const text = (typeof value === 'string' ? value : value.join(',')).replace(/;[^,]*/g, '').replace(/(max-age\s*=\s*[0-9]+)\+[0-9]+/gi, '$1')
  const d = parseCacheControl(text)
  return d.size === 0 ? undefined : d
}
