/**
 * A fast tokenizer for the well-formed HTML that CMSs emit, reporting the
 * same events with the same offsets as htmlparser2's Tokenizer (with
 * `decodeEntities: false`). It jumps between `<`, quotes and `>` with
 * indexOf instead of stepping a state machine one character at a time.
 *
 * It only knows the common token forms. On anything else (`<` not starting
 * a tag, bogus comments, CDATA, xmp/iframe/plaintext, a tag cut off by the
 * end of input, ...) it returns false before reporting anything past that
 * point, and the caller re-parses the whole page with htmlparser2's
 * Tokenizer. test/theme/parse.test.ts checks both paths build equal trees.
 */
import { QuoteType } from 'htmlparser2'

/**
 * What the scanner reports: htmlparser2's Tokenizer callbacks, except that an
 * attribute comes in one call and an end tag carries the index of its `>`.
 */
export interface ScanSink {
  isInForeignContext (): boolean
  ontext (start: number, end: number): void
  onopentagname (start: number, end: number): void
  /** Value bounds exclude quotes; both are -1 for an attribute without a value. */
  attribute (nameStart: number, nameEnd: number, valueStart: number, valueEnd: number, quote: QuoteType): void
  onopentagend (end: number): void
  onselfclosingtag (end: number): void
  /** `</name>`: name at [start, end), `>` at gt. */
  closeTag (start: number, end: number, gt: number): void
  oncomment (start: number, end: number, offset: number): void
  ondeclaration (start: number, end: number): void
  onend (): void
}

const LT = 60; const GT = 62; const SLASH = 47; const EQ = 61; const DQ = 34; const SQ = 39; const BANG = 33; const DASH = 45

function isWs (c: number): boolean { return c === 32 || c === 10 || c === 9 || c === 12 || c === 13 }
function isAlpha (c: number): boolean { return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) }
/** Characters a tag name may have here; other names are left to the full tokenizer. */
function isNameChar (c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === DASH || c === 58 || c === 95 || c === 46
}
/**
 * Attribute names end where htmlparser2 ends them. Quotes, `<`, and non-ASCII or control characters (which
 * the serialiser's `\s` check could reject) send the page to the full tokenizer.
 */
function endsAttrName (c: number): boolean { return c <= 32 || c === SLASH || c === GT || c === EQ || c === DQ || c === SQ || c === LT || c >= 127 }

/** Elements whose content is text up to their own end tag (outside SVG/MathML); title and textarea decode entities. */
const textOnly = new Set(['script', 'style', 'title', 'textarea'])
/** Other elements the tokenizer treats specially; pages using them take the full path. */
const otherSpecial = new Set(['xmp', 'iframe', 'noembed', 'noframes', 'plaintext'])

/** Scans `s`, reporting events to `cb`; false means "not handled, use the full tokenizer" (and `cb` must be discarded). */
export function fastScan (s: string, cb: ScanSink): boolean {
  const n = s.length
  let i = 0
  while (i < n) {
    const lt = s.indexOf('<', i)
    if (lt < 0) { cb.ontext(i, n); break }
    if (lt > i) cb.ontext(i, lt)
    if (lt + 1 >= n) return false
    const c = s.charCodeAt(lt + 1)
    if (isAlpha(c)) {
      const foreign = cb.isInForeignContext()
      let j = lt + 2
      while (j < n && isNameChar(s.charCodeAt(j))) j++
      if (j >= n) return false
      const t = s.charCodeAt(j)
      if (!(isWs(t) || t === SLASH || t === GT)) return false
      // Only names starting with s, t, x, i, n or p can be raw-text elements: skip the slice for the rest.
      const c0 = c | 0x20
      const lower = !foreign && (c0 === 115 || c0 === 116 || c0 === 120 || c0 === 105 || c0 === 110 || c0 === 112) ? s.slice(lt + 1, j).toLowerCase() : ''
      if (otherSpecial.has(lower)) return false
      cb.onopentagname(lt + 1, j)
      const end = scanAttrs(s, j, cb)
      if (end < 0) return false
      i = end + 1
      // In HTML `<script/>` still starts raw text: `/>` means nothing there.
      if (textOnly.has(lower)) {
        // Raw or escapable raw text: up to the first `</name` followed by whitespace, '/' or '>'.
        const close = findClose(s, i, lower)
        if (close < 0) return false
        if (close > i) cb.ontext(i, close)
        const nameEnd = close + 2 + lower.length
        let k = nameEnd
        while (k < n && isWs(s.charCodeAt(k))) k++
        if (k >= n || s.charCodeAt(k) !== GT) return false
        cb.closeTag(close + 2, nameEnd, k)
        i = k + 1
      }
    } else if (c === SLASH) {
      let j = lt + 2
      if (j >= n || !isAlpha(s.charCodeAt(j))) return false
      while (j < n && isNameChar(s.charCodeAt(j))) j++
      const nameEnd = j
      while (j < n && isWs(s.charCodeAt(j))) j++
      if (j >= n || s.charCodeAt(j) !== GT) return false
      cb.closeTag(lt + 2, nameEnd, j)
      i = j + 1
    } else if (c === BANG) {
      if (s.startsWith('--', lt + 2)) {
        const start = lt + 4
        const e = s.indexOf('-->', start)
        if (e < 0) return false
        // `<!-->`, `<!--->` and dashes next to the end are where tokenizers disagree: leave them to the full one.
        const first = s.charCodeAt(start)
        if (first === GT || first === DASH || (e > start && s.charCodeAt(e - 1) === DASH)) return false
        cb.oncomment(start, e + 2, 2)
        i = e + 3
      } else {
        if (!/^doctype[\s>]/i.test(s.slice(lt + 2, lt + 10))) return false
        const e = s.indexOf('>', lt + 2)
        if (e < 0) return false
        cb.ondeclaration(lt + 2, e)
        i = e + 1
      }
    } else return false
  }
  cb.onend()
  return true
}

/**
 * Attributes from `i` (just after the tag name) to the tag's `>`. Returns the
 * index of `>`, or -1 when the tag takes a form left to the full tokenizer.
 */
function scanAttrs (s: string, i: number, cb: ScanSink): number {
  const n = s.length
  while (i < n) {
    let c = s.charCodeAt(i)
    if (isWs(c)) { i++; continue }
    if (c === GT) { cb.onopentagend(i); return i }
    if (c === SLASH) {
      if (i + 1 < n && s.charCodeAt(i + 1) === GT) { cb.onselfclosingtag(i + 1); return i + 1 }
      return -1
    }
    if (c === EQ || c === DQ || c === SQ || c === LT) return -1
    const ns = i
    while (i < n && !endsAttrName(s.charCodeAt(i))) i++
    if (i >= n) return -1
    c = s.charCodeAt(i)
    if (!(isWs(c) || c === SLASH || c === GT || c === EQ)) return -1
    const ne = i
    let j = i
    while (j < n && isWs(s.charCodeAt(j))) j++
    if (j >= n) return -1
    if (s.charCodeAt(j) !== EQ) { cb.attribute(ns, ne, -1, -1, QuoteType.NoValue); i = j; continue }
    j++
    while (j < n && isWs(s.charCodeAt(j))) j++
    if (j >= n) return -1
    const q = s.charCodeAt(j)
    if (q === DQ || q === SQ) {
      const e = s.indexOf(q === DQ ? '"' : "'", j + 1)
      if (e < 0) return -1
      cb.attribute(ns, ne, j + 1, e, q === DQ ? QuoteType.Double : QuoteType.Single)
      i = e + 1
      // `a="x"b="y"` is legal to htmlparser2 but rare; keep the common form only.
      if (i < n && !(isWs(s.charCodeAt(i)) || s.charCodeAt(i) === GT || s.charCodeAt(i) === SLASH)) return -1
    } else {
      if (q === GT || q === EQ || q === LT || q === 96) return -1
      let e = j
      while (e < n) {
        const d = s.charCodeAt(e)
        if (isWs(d) || d === GT) break
        if (d === DQ || d === SQ || d === EQ || d === LT || d === 96) return -1
        e++
      }
      if (e >= n) return -1
      cb.attribute(ns, ne, j, e, QuoteType.Unquoted)
      i = e
    }
  }
  return -1
}

/** Index of the `</name` that ends a raw-text element, as htmlparser2 finds it (case-insensitive, then a tag-section end). */
function findClose (s: string, from: number, name: string): number {
  const n = s.length
  let i = from
  for (;;) {
    const k = s.indexOf('</', i)
    if (k < 0) return -1
    const e = k + 2 + name.length
    if (e < n && s.slice(k + 2, e).toLowerCase() === name) {
      const c = s.charCodeAt(e)
      if (isWs(c) || c === SLASH || c === GT) return k
    }
    i = k + 2
  }
}
