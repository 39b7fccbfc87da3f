/**
 * Entity decoding for parse.ts, which tokenizes with entities left encoded:
 * only text and attribute values that contain `&` come here. The six common
 * references are replaced directly; anything else is decoded by
 * htmlparser2's own decoding tokenizer, so the result is exactly what
 * `parseDocument(html, { decodeEntities: true })` would hold.
 */
import { QuoteType, Tokenizer, type TokenizerCallbacks } from 'htmlparser2'


/** Runs the decoding tokenizer over `wrapped` and returns the text (or attribute value) it reports. */
function decodeVia (wrapped: string, attr: boolean): string {
  let out = ''
  const nop = (): void => {}
  const take = (s: number, e: number): void => { out += wrapped.slice(s, e) }
  const cp = (c: number): void => { out += String.fromCodePoint(c) }
  const cbs: TokenizerCallbacks = {
    onattribdata: attr ? take : nop, onattribentity: attr ? cp : nop, onattribend: nop, onattribname: nop,
    oncdata: nop, onclosetag: nop, oncomment: nop, ondeclaration: nop, onend: nop, onopentagend: nop,
    onopentagname: nop, onprocessinginstruction: nop, onselfclosingtag: nop,
    ontext: attr ? nop : take, ontextentity: attr ? nop : cp
  }
  const t = new Tokenizer({ decodeEntities: true }, cbs)
  t.write(wrapped)
  t.end()
  return out
}

/** Decodes `&amp; &lt; &gt; &quot; &apos; &nbsp;` without a regex; null when another reference is present. */
function decodeCommon (raw: string): string | null {
  let out = ''
  let from = 0
  let i = raw.indexOf('&')
  while (i >= 0) {
    let ch: string
    let len: number
    if (raw.startsWith('amp;', i + 1)) { ch = '&'; len = 5 } else if (raw.startsWith('lt;', i + 1)) { ch = '<'; len = 4 } else if (raw.startsWith('gt;', i + 1)) { ch = '>'; len = 4 } else if (raw.startsWith('quot;', i + 1)) { ch = '"'; len = 6 } else if (raw.startsWith('nbsp;', i + 1)) { ch = '\u00a0'; len = 6 } else if (raw.startsWith('apos;', i + 1)) { ch = "'"; len = 6 } else return null
    out += raw.slice(from, i) + ch
    from = i + len
    i = raw.indexOf('&', from)
  }
  return out + raw.slice(from)
}

export function decodeText (raw: string, rcdata: string | null): string {
  const fast = decodeCommon(raw)
  if (fast !== null) return fast
  if (rcdata === null) return decodeVia(raw, false)
  return decodeVia(`<${rcdata}>${raw}`, false)
}

export function decodeAttr (raw: string, quote: QuoteType): string {
  // Attribute values treat a few legacy references differently from text, so the fallback decodes in attribute context.
  const fast = decodeCommon(raw)
  if (fast !== null) return fast
  const q = quote === QuoteType.Double ? '"' : quote === QuoteType.Single ? "'" : ''
  return decodeVia(`<a a=${q}${raw}${q}>`, true)
}
