/**
 * HTML5 serialisation of domhandler nodes, written for the transform's hot
 * path: iterative (10,000-deep pages must not blow the stack), with the
 * content-side drop/strip rules applied on the fly instead of by mutation so
 * that `method="raw"` rules can still see the untouched content.
 */
import type { AnyNode, Element } from 'domhandler'
import { isVerbatim } from './source-tree.ts'

export const voidElements = new Set(['area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta',
  'param', 'source', 'track', 'wbr', 'basefont', 'bgsound', 'frame', 'keygen'])
/** Raw-text elements (HTML §13.1.2): their text is read back verbatim, so escaping it would change it. */
export const rawText = new Set(['script', 'style', 'xmp', 'iframe', 'noembed', 'noframes'])

const textRe = /[&<>]/
const attrRe = /[&"]/
/** Attribute names a browser would not read back as one attribute; malformed pages produce them. */
const badAttrName = /[\s"'<>/=]|^$/

export function escapeText (s: string): string {
  if (!textRe.test(s)) return s
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

export function escapeAttr (s: string): string {
  if (!attrRe.test(s)) return s
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;')
}

/** Markup content-side before/after/replace rules put around or into one content node. */
export interface ContentWrap {
  before: string
  after: string
  /** Replaces the node itself; null keeps it. */
  replace: string | null
  /** At the start and end of the node's children (`content-children` rules). */
  innerBefore: string
  innerAfter: string
}

/** Content-side rule results for one request. */
export interface ContentMods {
  readonly drop: ReadonlySet<AnyNode>
  readonly strip: ReadonlySet<AnyNode>
  readonly dropAttrs: ReadonlyMap<AnyNode, readonly string[]>
  readonly wrap: ReadonlyMap<AnyNode, ContentWrap>
  /** Every node above a dropped, stripped or attribute-edited one: those must be re-serialised. */
  readonly touched: ReadonlySet<AnyNode>
}

export function attrsHtml (attribs: Record<string, string>, name: string, dropped?: readonly string[]): string {
  if (name === 'meta') {
    // The output is always UTF-8, so a copied charset declaration must say so.
    if (attribs.charset !== undefined) return ' charset="utf-8"'
    if ((attribs['http-equiv'] ?? '').toLowerCase() === 'content-type') return ' http-equiv="Content-Type" content="text/html; charset=utf-8"'
  }
  let s = ''
  for (const k in attribs) {
    if (badAttrName.test(k)) continue
    if (dropped !== undefined && (dropped[0] === '*' || dropped.includes(k))) continue
    const v = attribs[k]
    s += v === '' ? ` ${k}=""` : ` ${k}="${escapeAttr(v)}"`
  }
  return s
}

/**
 * Raw text that cannot end its element early. In a script, `<!--` followed by
 * `<script` makes browsers enter the "double escaped" state, where the closing
 * </script> no longer ends it and the rest of the theme becomes script; only a
 * `-->` leaves it. The legacy `<!-- document.write('<script…') //-->` does
 * leave it and must stay as it is (`<\!--` outside a string is a JavaScript
 * syntax error), so `<!--` is rewritten only when the text would end inside
 * that state, where `<\!--` at least keeps the theme intact.
 */
function safeRaw (name: string, s: string): string {
  if (s.includes('</') && s.toLowerCase().includes('</' + name)) s = s.replace(new RegExp(`</(${name})`, 'gi'), '<\\/$1')
  return name === 'script' && s.includes('<!--') && endsDoubleEscaped(s) ? s.replace(/<!--/g, '<\\!--') : s
}

function isScriptDelimiter (c: number): boolean { return c === 32 || c === 9 || c === 10 || c === 12 || c === 13 || c === 47 || c === 62 }

/**
 * Whether a browser reading `s` as script text ends in the double escaped state (HTML §13.2.5.20–31), given that
 * every `</script` in it has already been rewritten: `<!--` enters the escaped state, `<script` and a delimiter
 * there the double escaped one, and `-->` returns from either to plain script data.
 */
export function endsDoubleEscaped (s: string): boolean {
  const lower = s.toLowerCase()
  let i = lower.indexOf('<!--')
  while (i >= 0) {
    // `<!-->` ends the escape at once: its `-->` overlaps the `<!--`.
    const close = lower.indexOf('-->', i + 2)
    let j = lower.indexOf('<script', i + 4)
    while (j >= 0 && !isScriptDelimiter(lower.charCodeAt(j + 7))) j = lower.indexOf('<script', j + 1)
    if (j < 0 || (close >= 0 && close < j)) {
      if (close < 0) return false
      i = lower.indexOf('<!--', close + 3)
      continue
    }
    const out = lower.indexOf('-->', j + 7)
    if (out < 0) return true
    i = lower.indexOf('<!--', out + 3)
  }
  return false
}

const rcdata = new Set(['title', 'textarea'])

function textOf (el: Element): string {
  if (el.children.length === 1 && el.children[0].type === 'text') return el.children[0].data
  let s = ''
  const stack: AnyNode[] = [...el.children].reverse()
  while (stack.length > 0) {
    const c = stack.pop() as AnyNode
    if (c.type === 'text') s += c.data
    else if ('children' in c) for (let i = c.children.length - 1; i >= 0; i--) stack.push(c.children[i])
  }
  return s
}

function isElement (n: AnyNode): n is Element { return n.type === 'tag' || n.type === 'script' || n.type === 'style' }

/**
 * Text copied from the source must not run into what follows it: a `<` could
 * start a tag and a trailing `&x` could join the next characters into an entity.
 */
const unsafeRawText = /[<]|&[#\w]*$/

/**
 * Serialises nodes as HTML5, honouring `mods` when given. With `src` (the
 * text a parse.ts document was parsed from), unmodified `verbatim` subtrees
 * and plain text are copied from the source instead of re-serialised.
 */
export function serializeNodes (nodes: readonly AnyNode[], mods: ContentMods | null, src?: string): string {
  let out = ''
  const stack: Array<AnyNode | string> = []
  for (let i = nodes.length - 1; i >= 0; i--) stack.push(nodes[i])
  while (stack.length > 0) {
    const n = stack.pop() as AnyNode | string
    if (typeof n === 'string') { out += n; continue }
    let w: ContentWrap | undefined
    if (mods !== null) {
      if (mods.drop.has(n)) continue
      if (mods.wrap.size > 0 && (w = mods.wrap.get(n)) !== undefined) {
        out += w.before
        if (w.after !== '') stack.push(w.after)
        if (w.replace !== null) { out += w.replace; continue }
      }
    }
    if (src !== undefined && isVerbatim(n) && (mods === null || (!mods.touched.has(n) && !mods.strip.has(n) && !mods.dropAttrs.has(n)))) {
      out += src.slice(n.startIndex as number, (n.endIndex as number) + 1)
      continue
    }
    switch (n.type) {
      case 'text': {
        const p = n.parent
        if (p !== null && isElement(p) && rawText.has(p.name)) out += safeRaw(p.name, n.data)
        else if (src !== undefined && n.startIndex !== null && n.endIndex !== null) {
          const raw = src.slice(n.startIndex, n.endIndex + 1)
          out += unsafeRawText.test(raw) ? escapeText(n.data) : raw
        } else out += escapeText(n.data)
        break
      }
      case 'comment': out += `<!--${n.data.replace(/--!?>/g, '')}-->`; break
      case 'directive': if (/^!doctype/i.test(n.data)) out += `<${n.data}>`; break
      case 'cdata': case 'root':
        for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i])
        break
      default: {
        const el = n as Element
        if (el.name === 'plaintext') {
          // Nothing can close <plaintext>: it would swallow the rest of the theme. <pre> shows the same text.
          out += '<pre>'
          stack.push('</pre>')
          for (let i = el.children.length - 1; i >= 0; i--) stack.push(el.children[i])
          continue
        }
        if (rawText.has(el.name) || rcdata.has(el.name)) {
          // Browsers read these back as text only, whatever tags a lenient parse put inside them.
          const text = textOf(el)
          // Stripping the element keeps its text, as a text node (Diazo's strip on <title>).
          if (mods !== null && mods.strip.has(el)) { out += escapeText(text); continue }
          out += '<' + el.name + attrsHtml(el.attribs, el.name, mods?.dropAttrs.get(el)) + '>'
          out += rcdata.has(el.name) ? escapeText(text) : safeRaw(el.name, text)
          out += `</${el.name}>`
          continue
        }
        const stripped = mods !== null && mods.strip.has(el)
        if (!stripped) {
          out += '<' + el.name + attrsHtml(el.attribs, el.name, mods?.dropAttrs.get(el))
          out += '>'
          if (voidElements.has(el.name)) continue
          stack.push(`</${el.name}>`)
        }
        if (w !== undefined) {
          out += w.innerBefore
          if (w.innerAfter !== '') stack.push(w.innerAfter)
        }
        for (let i = el.children.length - 1; i >= 0; i--) stack.push(el.children[i])
      }
    }
  }
  return out
}
