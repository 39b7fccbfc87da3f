/**
 * The content-page parser: htmlparser2's Tokenizer (entities left encoded)
 * driving a lean tree builder that yields the same domhandler tree as
 * `parseDocument(html, { decodeEntities: true })`, and in the same pass
 * builds the id/class/tag index and marks which elements may be copied from
 * the source text verbatim.
 *
 * Why not htmlparser2's Parser + DomHandler: on a 60 KB page those two layers
 * cost more than the tokenizer itself (docs/rules.md, "Parser choice"), and the
 * decoding tokenizer walks text one character at a time where the
 * non-decoding one jumps to the next `<`. Entities are decoded here only in
 * the rare text and attribute values that contain `&`.
 *
 * Well-formed pages are tokenized by scan.ts (indexOf-driven, several times
 * faster); anything it does not know sends the page through htmlparser2's
 * Tokenizer instead. Tree-building semantics follow htmlparser2's Parser in
 * HTML mode (implied end tags, void elements, SVG/MathML foreign context, one
 * open <form>); test/theme/parse.test.ts checks both paths build trees
 * identical to parseDocument's on generated broken and well-formed pages.
 */
import { QuoteType, Tokenizer, type TokenizerCallbacks } from 'htmlparser2'
import { Comment, Document, ProcessingInstruction, type AnyNode, type Element, type ParentNode, type Text } from 'domhandler'
import type { DomIndex } from './dom-index.ts'
import { decodeAttr, decodeText } from './entities.ts'
import { attrName, tagName } from './names.ts'
import { fastScan, type ScanSink } from './scan.ts'

/**
 * An element that knows whether `source.slice(startIndex, endIndex + 1)`
 * reads back as exactly the subtree: every element in it was closed by its
 * own end tag, and nothing in it is something the serialiser would rewrite.
 */
export type SourceElement = Element & { verbatim: boolean }

export function isVerbatim (n: AnyNode): n is SourceElement { return (n as Partial<SourceElement>).verbatim === true }

/*
 * Elements and text nodes are plain objects with the fields of domhandler's
 * classes (which is all css-select, domutils and this module read): building
 * them from literals costs a third of running domhandler's constructor chain,
 * and a page has thousands. Casts are confined to these two functions.
 */
function newElement (name: string, start: number): SourceElement {
  const el = {
    type: name === 'script' ? 'script' : name === 'style' ? 'style' : 'tag',
    name,
    attribs: {},
    children: [],
    parent: null,
    prev: null,
    next: null,
    startIndex: start,
    endIndex: null,
    verbatim: true
  }
  return el as unknown as SourceElement
}

function newText (data: string, start: number | null, end: number): Text {
  const t = { type: 'text', data, parent: null, prev: null, next: null, startIndex: start, endIndex: end }
  return t as unknown as Text
}

/** A parsed content page; `source` is the text the indices refer to. */
export class SourceDocument extends Document {
  source = ''
  readonly elements: Element[] = []
  domIndex: DomIndex = { byId: new Map(), byClass: new Map(), byTag: new Map(), order: null, all: this.elements }
}

const voids = new Set(['area', 'base', 'basefont', 'br', 'col', 'command', 'embed', 'frame', 'hr', 'img', 'input',
  'isindex', 'keygen', 'link', 'meta', 'param', 'source', 'track', 'wbr'])

// Which open elements a start tag closes implicitly, grouped by the closing tag (HTML §13.2.6 in the simplified
// form htmlparser2 implements; kept identical to it so both parsers build the same tree).
const closesP = ['address', 'article', 'aside', 'blockquote', 'details', 'div', 'dl', 'fieldset', 'figcaption',
  'figure', 'footer', 'form', 'header', 'hr', 'main', 'nav', 'ol', 'pre', 'section', 'table', 'ul', 'p']
const implied = new Map<string, ReadonlySet<string>>()
for (const t of closesP) implied.set(t, new Set(['p']))
for (const h of ['h1', 'h2', 'h3', 'h4', 'h5', 'h6']) implied.set(h, new Set(['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'p']))
const formControls = new Set(['input', 'option', 'optgroup', 'select', 'button', 'datalist', 'textarea'])
for (const t of ['select', 'input', 'output', 'button', 'datalist', 'textarea']) implied.set(t, formControls)
implied.set('tr', new Set(['tr', 'th', 'td']))
implied.set('th', new Set(['th']))
implied.set('td', new Set(['thead', 'th', 'td']))
implied.set('body', new Set(['head', 'link', 'script']))
implied.set('a', new Set(['a']))
implied.set('li', new Set(['li']))
implied.set('option', new Set(['option']))
implied.set('optgroup', new Set(['optgroup', 'option']))
for (const t of ['dd', 'dt']) implied.set(t, new Set(['dd', 'dt']))
for (const t of ['rt', 'rp']) implied.set(t, new Set(['rt', 'rp']))
for (const t of ['tbody', 'tfoot']) implied.set(t, new Set(['thead', 'tbody']))

const NONE = 0; const SVG = 1; const MATH = 2
/** Elements inside SVG/MathML whose children are HTML again (names already SVG-cased). */
const integration = new Set(['mi', 'mo', 'mn', 'ms', 'mtext', 'annotation-xml', 'foreignObject', 'desc', 'title'])
/** SVG element names are case-sensitive; the tokenizer gives them lower-cased (SVG 1.1 element index). */
const svgNames = new Map(['altGlyph', 'altGlyphDef', 'altGlyphItem', 'animateColor', 'animateMotion', 'animateTransform',
  'clipPath', 'feBlend', 'feColorMatrix', 'feComponentTransfer', 'feComposite', 'feConvolveMatrix', 'feDiffuseLighting',
  'feDisplacementMap', 'feDistantLight', 'feDropShadow', 'feFlood', 'feFuncA', 'feFuncB', 'feFuncG', 'feFuncR',
  'feGaussianBlur', 'feImage', 'feMerge', 'feMergeNode', 'feMorphology', 'feOffset', 'fePointLight',
  'feSpecularLighting', 'feSpotLight', 'feTile', 'feTurbulence', 'foreignObject', 'glyphRef', 'linearGradient',
  'radialGradient', 'textPath'].map(n => [n.toLowerCase(), n]))

/** Elements whose text the tokenizer reads raw (no entities, no tags) outside foreign content. */
const rawElements = new Set(['script', 'style', 'xmp', 'iframe', 'noembed', 'noframes', 'plaintext'])
const rcdataElements = new Set(['title', 'textarea'])
// Per-name parsing rules as bit flags: one Map lookup per tag instead of one per rule.
const VOID = 1; const RAW = 2; const RCDATA = 4; const INTEGRATION = 8; const IMPLIES = 16; const OTHER = 32; const FOREIGN_ROOT = 64
const TEXT_ONLY = RAW | RCDATA
const FOREIGN_SWITCH = INTEGRATION | FOREIGN_ROOT
const flags = new Map<string, number>()
const flag = (names: Iterable<string>, f: number): void => { for (const n of names) flags.set(n, (flags.get(n) ?? 0) | f) }
flag(voids, VOID)
flag(rawElements, RAW)
flag(rcdataElements, RCDATA)
flag(integration, INTEGRATION)
flag(implied.keys(), IMPLIES)
flag(['svg', 'math'], FOREIGN_ROOT)
// Elements open() and attach() treat by name: a second form is ignored, a meta may declare a charset.
flag(['form', 'meta'], OTHER)

/** Attribute names the serialiser drops (see html.ts): an element carrying one must be re-serialised. */
const badAttrName = /[\s"'<>/=]|^$/

// --- the builder ------------------------------------------------------------------------------------------------
function push (m: Map<string, Element[]>, k: string, el: Element): void {
  const l = m.get(k)
  if (l === undefined) m.set(k, [el]); else l.push(el)
}

function append (parent: ParentNode, node: AnyNode): void {
  const kids = parent.children
  const prev = kids.length === 0 ? null : kids[kids.length - 1]
  kids.push(node)
  node.parent = parent
  if (prev !== null) { node.prev = prev; prev.next = node }
}

class Builder implements TokenizerCallbacks, ScanSink {
  readonly src: string
  readonly doc = new SourceDocument([])
  readonly ix: DomIndex
  readonly all: Element[]
  readonly stack: SourceElement[] = []
  readonly foreign: number[] = [NONE]
  /** The element whose start tag is being read; null while outside a tag or for an ignored <form>. */
  opening: SourceElement | null = null
  openingParent: ParentNode | null = null
  inTag = false
  attrName = ''
  attrValue = ''
  attrCount = 0
  /** flags.get(name) of the element being opened. */
  openingFlags = 0
  /** False when the tokenizer already refuses the attribute names the serialiser would drop (scan.ts does). */
  readonly checkNames: boolean

  constructor (src: string, checkNames: boolean) {
    this.src = src
    this.doc.source = src
    this.ix = this.doc.domIndex
    this.all = this.doc.elements
    this.checkNames = checkNames
  }

  top (): ParentNode { return this.stack.length === 0 ? this.doc : this.stack[this.stack.length - 1] }

  /** Something under the current element will not read back from the source as it was parsed. */
  taint (): void { if (this.stack.length > 0) this.stack[this.stack.length - 1].verbatim = false }

  isInForeignContext (): boolean { return this.foreign[this.foreign.length - 1] !== NONE }

  tagName (start: number, end: number): string {
    const name = tagName(this.src, start, end)
    const ctx = this.foreign[this.foreign.length - 1]
    if (ctx === SVG) return svgNames.get(name) ?? name
    if (this.foreign.length > 1) {
      const adjusted = svgNames.get(name)
      if (adjusted !== undefined && this.stack.some(e => e.name === adjusted)) return adjusted
    }
    if (ctx === NONE) return name === 'image' ? 'img' : name
    return name
  }

  /** Pops the current element; `explicit` is the '>' of its own end tag, or -1 when the close is implied. */
  pop (explicit: number): void {
    const el = this.stack.pop() as SourceElement
    const f = flags.get(el.name) ?? 0
    if ((f & FOREIGN_SWITCH) !== 0) this.foreign.pop()
    this.finish(el, explicit, f)
  }

  finish (el: SourceElement, explicit: number, f: number): void {
    if (explicit < 0) el.verbatim = false
    else el.endIndex = explicit
    if (el.verbatim && (f & TEXT_ONLY) !== 0) {
      // The serialiser rewrites these as text only (html.ts); keep the source only when it already is.
      // Raw text must also be what the source says (inside SVG/MathML a <script>'s entities were decoded).
      const kids = el.children
      const k = kids[0]
      if (el.name === 'plaintext' || kids.length > 1) el.verbatim = false
      else if (k !== undefined) {
        if (k.type !== 'text' || k.data.includes('<!--')) el.verbatim = false
        else if ((f & RAW) !== 0 && (k.startIndex === null || k.data !== this.src.slice(k.startIndex, (k.endIndex as number) + 1))) el.verbatim = false
      }
    }
    if (!el.verbatim) this.taint()
  }

  open (name: string, start: number): void {
    const f = flags.get(name) ?? 0
    this.openingFlags = f
    if (f === 0) {
      // The common case: an element with no special parsing rules.
      const el = newElement(name, start)
      this.attrCount = 0
      this.openingParent = this.top()
      this.opening = el
      this.stack.push(el)
      return
    }
    if (name === 'form' && this.stack.some(e => e.name === 'form')) { this.opening = null; this.taint(); return }
    if ((f & IMPLIES) !== 0) {
      const closes = implied.get(name) as ReadonlySet<string>
      while (this.stack.length > 0 && closes.has(this.stack[this.stack.length - 1].name)) this.pop(-1)
    }
    const el = newElement(name, start)
    this.attrCount = 0
    this.openingParent = this.top()
    this.opening = el
    if ((f & VOID) === 0) {
      this.stack.push(el)
      if (name === 'svg') this.foreign.push(SVG)
      else if (name === 'math') this.foreign.push(MATH)
      else if ((f & INTEGRATION) !== 0) this.foreign.push(NONE)
    }
  }

  /** The start tag is complete: the element joins the tree and the index. */
  attach (end: number): SourceElement | null {
    this.inTag = false
    const el = this.opening
    if (el === null) return null
    this.opening = null
    append(this.openingParent as ParentNode, el)
    const ix = this.ix
    push(ix.byTag, el.name, el)
    const a = el.attribs
    const id = a.id
    if (id !== undefined) push(ix.byId, id, el)
    this.all.push(el)
    const f = this.openingFlags
    if (f !== 0) {
      if (el.name === 'meta' && (a.charset !== undefined || a['http-equiv'] !== undefined)) el.verbatim = false
      if ((f & VOID) !== 0) this.finish(el, end, f)
    }
    return el
  }

  onopentagname (start: number, end: number): void { this.inTag = true; this.open(this.tagName(start, end), start - 1) }

  onattribname (start: number, end: number): void {
    this.attrName = attrName(this.src, start, end)
    this.attrValue = ''
  }

  onattribdata (start: number, end: number): void { this.attrValue += this.src.slice(start, end) }
  onattribentity (): void { /* entities are not decoded by this tokenizer */ }

  attribute (nameStart: number, nameEnd: number, valueStart: number, valueEnd: number, quote: QuoteType): void {
    this.attrName = attrName(this.src, nameStart, nameEnd)
    this.attrValue = valueStart < 0 ? '' : this.src.slice(valueStart, valueEnd)
    this.onattribend(quote)
  }

  onattribend (quote: QuoteType): void {
    const el = this.opening
    if (el === null) return
    const name = this.attrName
    if (this.checkNames && badAttrName.test(name)) el.verbatim = false
    // The first attribute needs no duplicate check; later ones keep the first value, as browsers do.
    if (this.attrCount++ === 0 || !Object.hasOwn(el.attribs, name)) {
      const v = this.attrValue
      el.attribs[name] = v.includes('&') ? decodeAttr(v, quote) : v
    }
  }

  onopentagend (end: number): void { this.attach(end) }

  onselfclosingtag (end: number): void {
    const el = this.attach(end)
    // HTML ignores `/>` except on SVG and MathML elements.
    if (el !== null && this.isInForeignContext() && this.stack[this.stack.length - 1] === el) this.pop(end)
  }

  closeTag (start: number, end: number, gt: number): void {
    // Most end tags close the current element and spell its name exactly: no name lookup needed.
    const top = this.stack.length === 0 ? null : this.stack[this.stack.length - 1]
    if (top !== null && top.name.length === end - start && this.src.startsWith(top.name, start)) this.pop(gt)
    else this.endTag(start, end, gt)
  }

  onclosetag (start: number, end: number): void { this.endTag(start, end, this.src.indexOf('>', end)) }

  endTag (start: number, end: number, gt: number): void {
    const name = this.tagName(start, end)
    if (((flags.get(name) ?? 0) & VOID) === 0) {
      let pos = -1
      for (let i = this.stack.length - 1; i >= 0; i--) if (this.stack[i].name === name) { pos = i; break }
      if (pos >= 0) {
        while (this.stack.length > pos + 1) this.pop(-1)
        this.pop(gt)
      } else if (name === 'p') {
        // A stray </p> stands for an empty paragraph.
        this.open('p', start - 2)
        const p = this.attach(-1)
        if (p !== null && this.stack[this.stack.length - 1] === p) this.pop(-1)
      } else this.taint()
    } else {
      this.taint()
      if (name === 'br') {
        // A stray </br> is a line break; it must not close anything, so it skips open()'s implied closes.
        const br = newElement('br', start - 2)
        br.verbatim = false
        append(this.top(), br)
        push(this.ix.byTag, 'br', br)
        this.all.push(br)
      }
    }
  }

  ontext (start: number, end: number): void { this.text(start, end, null) }
  ontextentity (): void { /* entities are not decoded by this tokenizer */ }

  /** Adds text; `literal` is text that does not come from the source as such (CDATA in foreign content). */
  text (start: number, end: number, literal: string | null): void {
    const parent = this.top()
    let data: string
    if (literal !== null) data = literal
    else {
      data = this.src.slice(start, end)
      if (data.includes('&')) {
        const pn = parent.type === 'root' ? '' : (parent as Element).name
        const raw = rawElements.has(pn) && this.rawContext()
        if (!raw) data = decodeText(data, rcdataElements.has(pn) ? pn : null)
      }
    }
    const kids = parent.children
    const last = kids.length === 0 ? null : kids[kids.length - 1]
    if (last !== null && last.type === 'text') {
      last.data += data
      last.endIndex = end - 1
      if (literal !== null) last.startIndex = null
      return
    }
    append(parent, newText(data, literal === null ? start : null, end - 1))
  }

  /** Whether the current raw-text element was opened where the tokenizer reads it raw (not inside SVG/MathML). */
  rawContext (): boolean {
    return this.foreign.length < 2 || this.foreign[this.foreign.length - 1] === NONE
  }

  oncomment (start: number, end: number, offset: number): void {
    const data = this.src.slice(start, end - offset)
    append(this.top(), new Comment(data))
    const clean = offset === 2 && this.src.startsWith('<!--', start - 4) && !data.includes('--') &&
      data[0] !== '>' && !data.startsWith('->')
    if (!clean) this.taint()
  }

  oncdata (start: number, end: number, offset: number): void {
    const value = this.src.slice(start, end - offset)
    this.taint()
    if (this.isInForeignContext()) this.text(start, end, value)
    else append(this.top(), new Comment(`[CDATA[${value}]]`))
  }

  ondeclaration (start: number, end: number): void {
    append(this.top(), new ProcessingInstruction('!doctype', '!' + this.src.slice(start, end)))
    this.taint()
  }

  onprocessinginstruction (start: number, end: number): void {
    // Only reached in XML mode; HTML turns `<?...>` into a bogus comment.
    const value = this.src.slice(start, end)
    const m = /\s|\//.exec(value)
    const name = (m === null ? value : value.slice(0, m.index)).toLowerCase()
    append(this.top(), new ProcessingInstruction('?' + name, '?' + value))
    this.taint()
  }

  onend (): void {
    while (this.stack.length > 0) {
      const el = this.stack[this.stack.length - 1]
      // A start tag cut off by the end of input never joined the tree (as with htmlparser2's DomHandler).
      if (el === this.opening) { this.stack.pop(); this.opening = null; continue }
      this.pop(-1)
    }
  }
}

/**
 * Parses an HTML page into a domhandler tree with start/end indices, the
 * selector index already built, and per-element `verbatim` marks.
 */
export function parsePage (html: string, opts?: { readonly tokenizer?: 'auto' | 'full' }): SourceDocument {
  if (opts?.tokenizer !== 'full') {
    const fast = new Builder(html, false)
    if (fastScan(html, fast)) return fast.doc
  }
  const b = new Builder(html, true)
  const t = new Tokenizer({ decodeEntities: false }, b)
  t.write(html)
  t.end()
  return b.doc
}
