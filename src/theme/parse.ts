/**
 * The content-page parser: htmlparser2's Tokenizer (entities left encoded)
 * driving a lean tree builder that yields a domhandler tree, and in the same
 * pass builds the id/class/tag index and marks which elements may be copied
 * from the source text verbatim. The tree is the one browsers build where
 * browsers and libxml2 agree (implied html/head/body, HTML's rules for which
 * start tags close an open <p>, list item or table cell, a bounded adoption
 * agency for misnested formatting), and libxml2's where they differ, since
 * Diazo's users wrote their selectors against libxml2's trees. Every scope
 * question is answered from per-level marks and per-name open counts, so no
 * page makes tree building quadratic.
 *
 * Why not htmlparser2's Parser + DomHandler: on a 60 KB page those two layers
 * cost more than the tokenizer itself (docs/rules.md, "Parser choice"), and the
 * decoding tokenizer walks text one character at a time where the
 * non-decoding one jumps to the next `<`. Entities are decoded here only in
 * the rare text and attribute values that contain `&`.
 *
 * Well-formed pages are tokenized by scan.ts (indexOf-driven, several times
 * faster); anything it does not know sends the page through htmlparser2's
 * Tokenizer instead. test/theme/parse.test.ts checks both paths build
 * identical trees on generated broken and well-formed pages.
 */
import { QuoteType, Tokenizer, type TokenizerCallbacks } from 'htmlparser2'
import { Comment, ProcessingInstruction, type Element, type ParentNode } from 'domhandler'
import type { DomIndex } from './dom-index.ts'
import { decodeAttr, decodeText } from './entities.ts'
import { attrName, tagName } from './names.ts'
import { fastScan, type ScanSink } from './scan.ts'
import { ADOPTION_REACH, ADOPTION_ROUNDS, AFTER_BODY, AFTER_HEAD, AFTER_HTML, BEFORE_HEAD, BEFORE_HTML, BUTTON_SCOPE, CLOSES_P, flags, FOREIGN_SWITCH, FORMATTING, HEAD_CONTENT, implied, IMPLIES, IN_BODY, IN_HEAD, INTEGRATION, IS_DD, IS_LI, IS_P, LIST_STOP, MATH, NONE, quirksDoctype, RAW, rawElements, rcdataElements, SPECIAL, STRUCTURE, SVG, svgNames, TABLE_CONTEXT, TABLE_START, TEXT_ONLY, VOID } from './html-elements.ts'
import { SourceDocument, append, detach, newElement, newText, push, type SourceElement } from './source-tree.ts'

export { isVerbatim, SourceDocument, type SourceElement } from './source-tree.ts'

/** Attribute names the serialiser drops (see html.ts): an element carrying one must be re-serialised. */
const badAttrName = /[\s"'<>/=]|^$/
const nonSpace = /[^ \t\n\f\r]/g

// --- the builder ------------------------------------------------------------------------------------------------

/** One tag name within one document: its parsing flags, and how many elements of that name are open. */
interface NameInfo { readonly f: number, open: number }

/** Where each kind of scope search would stop, for one level of the stack of open elements. */
interface Marks { p: number, list: number, dd: number, table: number }

class Builder implements TokenizerCallbacks, ScanSink {
  readonly src: string
  readonly doc = new SourceDocument([])
  readonly ix: DomIndex
  readonly all: Element[]
  readonly stack: SourceElement[] = []
  /** Per stack level: the element's NameInfo, and the nearest levels at or below it where scope searches stop. */
  readonly infos: NameInfo[] = []
  readonly marks: Marks[] = []
  readonly names = new Map<string, NameInfo>()
  readonly foreign: number[] = [NONE]
  /** The element whose start tag is being read; null while outside a tag or for an ignored tag. */
  opening: SourceElement | null = null
  openingParent: ParentNode | null = null
  /** The <html> or <body> a repeated start tag's attributes go to. */
  merging: SourceElement | null = null
  inTag = false
  attrName = ''
  attrValue = ''
  attrCount = 0
  /** flags of the element being opened. */
  openingFlags = 0
  /** False when the tokenizer already refuses the attribute names the serialiser would drop (scan.ts does). */
  readonly checkNames: boolean
  /** Themes: `<x/>` closes x, as libxml2 reads XHTML-style theme files. */
  readonly selfClosing: boolean
  mode = BEFORE_HTML
  html: SourceElement | null = null
  head: SourceElement | null = null
  body: SourceElement | null = null
  /** The '>' of `</body>` / `</html>` while nothing has followed them; -1 otherwise. */
  bodyEnd = -1
  htmlEnd = -1
  /** Quirks mode (no doctype, or a legacy one): a <table> then leaves an open <p> alone. */
  quirks = true

  constructor (src: string, opts: { checkNames: boolean, selfClosing: boolean }) {
    this.src = src
    this.doc.source = src
    this.ix = this.doc.domIndex
    this.all = this.doc.elements
    this.checkNames = opts.checkNames
    this.selfClosing = opts.selfClosing
  }

  top (): ParentNode { return this.stack.length === 0 ? this.doc : this.stack[this.stack.length - 1] }

  /** Something under the current element will not read back from the source as it was parsed. */
  taint (): void { if (this.stack.length > 0) this.stack[this.stack.length - 1].verbatim = false }

  isInForeignContext (): boolean { return this.foreign[this.foreign.length - 1] !== NONE }

  info (name: string): NameInfo {
    let i = this.names.get(name)
    if (i === undefined) { i = { f: flags.get(name) ?? 0, open: 0 }; this.names.set(name, i) }
    return i
  }

  isOpen (name: string): boolean { return (this.names.get(name)?.open ?? 0) > 0 }

  tagName (start: number, end: number): string {
    const name = tagName(this.src, start, end)
    const ctx = this.foreign[this.foreign.length - 1]
    if (ctx === SVG) return svgNames.get(name) ?? name
    if (this.foreign.length > 1) {
      const adjusted = svgNames.get(name)
      if (adjusted !== undefined && this.isOpen(adjusted)) return adjusted
    }
    if (ctx === NONE) return name === 'image' ? 'img' : name
    return name
  }

  /** Pushes an element on the stack of open elements, recording where scope searches from it stop. */
  pushEl (el: SourceElement, info: NameInfo): void {
    const i = this.stack.length
    this.stack.push(el)
    this.infos[i] = info
    info.open++
    this.mark(i)
  }

  mark (i: number): void {
    const f = this.infos[i].f
    const below = i === 0 ? null : this.marks[i - 1]
    let m = this.marks[i]
    if (m === undefined) { m = { p: -1, list: -1, dd: -1, table: -1 }; this.marks[i] = m }
    if (f === 0 && below !== null) { m.p = below.p; m.list = below.list; m.dd = below.dd; m.table = below.table; return }
    m.p = (f & (IS_P | BUTTON_SCOPE)) !== 0 ? i : below === null ? -1 : below.p
    m.list = (f & (IS_LI | LIST_STOP)) !== 0 ? i : below === null ? -1 : below.list
    m.dd = (f & (IS_DD | LIST_STOP)) !== 0 ? i : below === null ? -1 : below.dd
    m.table = (f & TABLE_CONTEXT) !== 0 ? i : below === null ? -1 : below.table
  }

  /** Pops the current element; `explicit` is the '>' of its own end tag, or -1 when the close is implied. */
  pop (explicit: number): void {
    const el = this.stack.pop() as SourceElement
    const info = this.infos[this.stack.length]
    info.open--
    const f = info.f
    if ((f & FOREIGN_SWITCH) !== 0) this.foreign.pop()
    this.finish(el, explicit, f)
  }

  /** Pops implied ends until the stack has `depth` elements. */
  popTo (depth: number): void { while (this.stack.length > depth) this.pop(-1) }

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

  /** An element no tag in the source stands for (html, head, body): not verbatim, and already in the tree. */
  implied (name: string, start: number): SourceElement {
    const el = newElement(name, start)
    el.verbatim = false
    append(this.top(), el)
    push(this.ix.byTag, name, el)
    this.all.push(el)
    this.pushEl(el, this.info(name))
    return el
  }

  /** Leaves <head> (or the elements still open in it) for what follows it. */
  closeHead (explicit: number): void {
    const head = this.head
    if (head === null) return
    const at = this.stack.lastIndexOf(head)
    if (at < 0) return
    this.popTo(at + 1)
    this.pop(explicit)
  }

  /** Goes back to the body after `</body>` or `</html>`: whatever follows belongs to it. */
  reopenBody (): void {
    this.bodyEnd = -1
    this.htmlEnd = -1
    this.mode = IN_BODY
  }

  /**
   * The insertion modes before <body> for a start tag (or, with name '', for text): creates the implied
   * elements. Returns true when the tag has been dealt with (ignored, or merged into <html>/<body>).
   */
  beforeBody (name: string, f: number, start: number): boolean {
    for (;;) {
      switch (this.mode) {
        case BEFORE_HTML:
          if (name === 'html') return false
          this.html = this.implied('html', start)
          this.mode = BEFORE_HEAD
          continue
        case BEFORE_HEAD:
          if (name === 'html') return this.merge(this.html)
          if (name === 'head') return false
          this.head = this.implied('head', start)
          this.mode = IN_HEAD
          continue
        case IN_HEAD:
          if (name === 'html') return this.merge(this.html)
          if (name === 'head') return this.ignore()
          if ((f & HEAD_CONTENT) !== 0) return false
          this.closeHead(-1)
          this.mode = AFTER_HEAD
          continue
        case AFTER_HEAD: {
          if (name === 'html') return this.merge(this.html)
          if (name === 'head') return this.ignore()
          const html = this.html as SourceElement
          this.popTo(this.stack.lastIndexOf(html) + 1)
          if (name === 'body') return false
          if ((f & HEAD_CONTENT) !== 0 && this.head !== null) {
            // Between </head> and <body>: HTML puts it back into <head>.
            this.openingParent = this.head
            this.head.verbatim = false
            html.verbatim = false
            return false
          }
          this.body = this.implied('body', start)
          this.mode = IN_BODY
          return false
        }
        case AFTER_BODY: case AFTER_HTML:
          this.reopenBody()
          continue
        default:
          if (name === 'html') return this.merge(this.html)
          if (name === 'body') return this.merge(this.body)
          if (name === 'head') return this.ignore()
          return false
      }
    }
  }

  /** A repeated <html> or <body>: its attributes join the first one's (those it lacks), no element is made. */
  merge (target: SourceElement | null): boolean {
    this.taint()
    if (target !== null) { this.merging = target; target.verbatim = false }
    return true
  }

  ignore (): boolean { this.taint(); return true }

  open (name: string, start: number): void {
    const info = this.info(name)
    const f = info.f
    this.openingFlags = f
    this.openingParent = null
    if (f === 0 && this.mode === IN_BODY) {
      // The common case: an element with no special parsing rules.
      const el = newElement(name, start)
      this.attrCount = 0
      this.openingParent = this.top()
      this.opening = el
      this.pushEl(el, info)
      return
    }
    if ((this.mode !== IN_BODY || (f & STRUCTURE) !== 0) && this.beforeBody(name, f, start)) {
      this.opening = this.merging === null ? null : newElement(name, start)
      this.attrCount = 0
      return
    }
    if (name === 'form' && this.isOpen('form')) { this.opening = null; this.taint(); return }
    if ((f & (CLOSES_P | TABLE_START | IMPLIES)) !== 0) this.closeFor(name, f)
    const el = newElement(name, start)
    this.attrCount = 0
    if (this.openingParent === null) this.openingParent = this.top()
    this.opening = el
    if ((f & STRUCTURE) !== 0) {
      if (name === 'html') { this.html = el; this.mode = BEFORE_HEAD } else if (name === 'head') { this.head = el; this.mode = IN_HEAD } else { this.body = el; this.mode = IN_BODY }
    }
    if ((f & VOID) === 0) {
      this.pushEl(el, info)
      if (name === 'svg') this.foreign.push(SVG)
      else if (name === 'math') this.foreign.push(MATH)
      else if ((f & INTEGRATION) !== 0) this.foreign.push(NONE)
    }
  }

  /** The elements a start tag closes first: an open <p>, the previous list item or table cell, and so on. */
  closeFor (name: string, f: number): void {
    const st = this.stack
    if ((f & TABLE_START) !== 0) {
      const cell = name === 'td' || name === 'th'
      for (;;) {
        const j = st.length === 0 ? -1 : this.marks[st.length - 1].table
        if (j < 0) break
        const n = st[j].name
        if (n === 'td' || n === 'th' || n === 'caption') { this.popTo(j); continue }
        if (n === 'tr') { if (cell) { this.popTo(j + 1); break } this.popTo(j); continue }
        if (n === 'tbody' || n === 'thead' || n === 'tfoot') {
          if (cell || name === 'tr') { this.popTo(j + 1); break }
          this.popTo(j); continue
        }
        if (n === 'table') this.popTo(j + 1)
        break
      }
    }
    if ((f & (IS_LI | IS_DD)) !== 0 && st.length > 0) {
      const m = this.marks[st.length - 1]
      const j = (f & IS_LI) !== 0 ? m.list : m.dd
      if (j >= 0 && ((f & IS_LI) !== 0 ? st[j].name === 'li' : (this.infos[j].f & IS_DD) !== 0)) this.popTo(j)
    }
    if ((f & CLOSES_P) !== 0 && st.length > 0 && !(this.quirks && name === 'table')) {
      const j = this.marks[st.length - 1].p
      if (j >= 0 && (this.infos[j].f & IS_P) !== 0) this.popTo(j)
    }
    if ((f & IMPLIES) !== 0) {
      const closes = implied.get(name) as ReadonlySet<string>
      while (st.length > 0 && closes.has(st[st.length - 1].name)) this.pop(-1)
    }
  }

  /** The start tag is complete: the element joins the tree and the index. */
  attach (end: number): SourceElement | null {
    this.inTag = false
    const el = this.opening
    if (el === null) return null
    this.opening = null
    const target = this.merging
    if (target !== null) {
      this.merging = null
      const had = target.attribs.id
      for (const k in el.attribs) if (!Object.hasOwn(target.attribs, k)) target.attribs[k] = el.attribs[k]
      if (had === undefined && target.attribs.id !== undefined) push(this.ix.byId, target.attribs.id, target)
      return null
    }
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
    // HTML ignores `/>` except on SVG and MathML elements; a theme honours it (but <html>/<head>/<body> stay open).
    if (el !== null && this.stack[this.stack.length - 1] === el &&
      (this.isInForeignContext() || (this.selfClosing && (this.openingFlags & STRUCTURE) === 0))) this.pop(end)
  }

  closeTag (start: number, end: number, gt: number): void {
    // Most end tags close the current element and spell its name exactly: no name lookup needed.
    const n = this.stack.length
    const top = n === 0 ? null : this.stack[n - 1]
    if (top !== null && top.name.length === end - start && (this.infos[n - 1].f & STRUCTURE) === 0 && this.src.startsWith(top.name, start)) this.pop(gt)
    else this.endTag(start, end, gt)
  }

  onclosetag (start: number, end: number): void { this.endTag(start, end, this.src.indexOf('>', end)) }

  endTag (start: number, end: number, gt: number): void {
    const name = this.tagName(start, end)
    const info = this.info(name)
    if ((this.mode !== IN_BODY || (info.f & STRUCTURE) !== 0) && this.endBeforeBody(name, start - 2)) { this.endStructure(name, gt); return }
    if (info.open > 0) {
      if ((info.f & FORMATTING) === 0 || !this.adopt(name, 0)) this.closeNamed(name, gt)
    } else if (name === 'p') {
      // A stray </p> stands for an empty paragraph.
      this.open('p', start - 2)
      const p = this.attach(-1)
      if (p !== null && this.stack[this.stack.length - 1] === p) this.pop(-1)
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

  /** Closes the nearest open element called `name` and everything opened after it (libxml2 and htmlparser2 do). */
  closeNamed (name: string, gt: number): void {
    let pos = this.stack.length - 1
    while (this.stack[pos].name !== name) pos--
    this.popTo(pos + 1)
    this.pop(gt)
  }

  /**
   * An end tag before <body> or of html/head/body: runs the insertion modes up to where the tag means something.
   * True when the tag is then an html/head/body end tag for endStructure; false to treat it as an ordinary one.
   */
  endBeforeBody (name: string, start: number): boolean {
    const struct = name === 'html' || name === 'head' || name === 'body'
    const opens = struct || name === 'br'
    for (;;) {
      switch (this.mode) {
        case BEFORE_HTML:
          if (!opens) return false
          this.html = this.implied('html', start)
          this.mode = BEFORE_HEAD
          continue
        case BEFORE_HEAD:
          if (!opens) return false
          this.head = this.implied('head', start)
          this.mode = IN_HEAD
          continue
        case IN_HEAD:
          if (name === 'head') return true
          if (!opens) return false
          this.closeHead(-1)
          this.mode = AFTER_HEAD
          continue
        case AFTER_HEAD:
          if (name === 'head') return true
          if (!opens) return false
          this.beforeBody('', 0, start)
          continue
        case AFTER_BODY: case AFTER_HTML:
          if (struct) return true
          this.reopenBody()
          continue
        default:
          return struct
      }
    }
  }

  /** `</head>`, `</body>` and `</html>`: they end an insertion mode; what follows `</body>` still goes into the body. */
  endStructure (name: string, gt: number): void {
    const onlyBody = (): boolean => this.stack.length > 0 && this.stack[this.stack.length - 1] === this.body
    switch (name) {
      case 'head':
        if (this.mode === IN_HEAD) { this.closeHead(this.stack[this.stack.length - 1] === this.head ? gt : -1); this.mode = AFTER_HEAD } else this.taint()
        return
      case 'body':
        if (this.mode === IN_BODY) { this.bodyEnd = onlyBody() ? gt : -1; this.mode = AFTER_BODY } else this.taint()
        return
      default:
        if (this.mode === IN_BODY) { this.bodyEnd = -1; this.mode = AFTER_BODY }
        if (this.mode === AFTER_BODY) { this.htmlEnd = this.bodyEnd >= 0 && onlyBody() ? gt : -1; this.mode = AFTER_HTML } else this.taint()
    }
  }

  /**
   * `</b>` (or another formatting element) with a block opened inside the <b>: HTML's adoption agency moves the
   * block out and gives it a copy of the <b>, so `<b>x<p>y</b>z</p>` keeps z in its paragraph. Bounded: it only
   * looks ADOPTION_REACH elements down the stack, which keeps misnested pages linear. False: close as usual.
   */
  adopt (name: string, round: number): boolean {
    const st = this.stack
    const top = st.length - 1
    let fi = top
    let fb = -1
    for (; fi >= 0 && top - fi < ADOPTION_REACH; fi--) {
      if (st[fi].name === name) break
      const f = this.infos[fi].f
      if ((f & (FOREIGN_SWITCH | STRUCTURE)) !== 0) return false
      if ((f & SPECIAL) !== 0) fb = fi
    }
    if (fi < 0 || top - fi >= ADOPTION_REACH || fb < 0 || fi === 0) return false
    const fEl = st[fi]
    const block = st[fb]
    const common = fEl.parent ?? this.doc
    fEl.verbatim = false
    block.verbatim = false
    if (common !== this.doc) (common as SourceElement).verbatim = false
    // The elements between: formatting ones are copied around the block, the others just stop being open.
    const between: SourceElement[] = []
    const betweenInfo: NameInfo[] = []
    let last: SourceElement = block
    for (let i = fb - 1; i > fi; i--) {
      const node = st[i]
      node.verbatim = false
      if ((this.infos[i].f & FORMATTING) !== 0 && between.length < 3) {
        const copy = this.copyOf(node, block.startIndex ?? 0)
        detach(last)
        append(copy, last)
        last = copy
        between.unshift(copy)
        betweenInfo.unshift(this.infos[i])
      } else this.infos[i].open--
    }
    detach(last)
    append(common, last)
    const copy = this.copyOf(fEl, block.startIndex ?? 0)
    const kids = block.children.slice()
    block.children.length = 0
    for (const k of kids) { k.parent = null; k.prev = null; k.next = null; append(copy, k) }
    append(block, copy)
    // The stack becomes: ..., common, copies, block, copy of the formatting element, what was open above the block.
    const above = st.slice(fb + 1)
    const aboveInfo = this.infos.slice(fb + 1, top + 1)
    const fInfo = this.infos[fi]
    const blockInfo = this.infos[fb]
    st.length = fi
    const rebuilt: SourceElement[] = [...between, block, copy, ...above]
    const rebuiltInfo: NameInfo[] = [...betweenInfo, blockInfo, fInfo, ...aboveInfo]
    for (let i = 0; i < rebuilt.length; i++) {
      st.push(rebuilt[i])
      this.infos[fi + i] = rebuiltInfo[i]
      this.mark(fi + i)
    }
    if (round + 1 < ADOPTION_ROUNDS && !this.adopt(name, round + 1)) this.closeNamed(name, -1)
    return true
  }

  /** A new element with the name and attributes of `el` (adoption agency), not from the source; `start` orders it. */
  copyOf (el: SourceElement, start: number): SourceElement {
    const c = newElement(el.name, start)
    c.verbatim = false
    Object.assign(c.attribs, el.attribs)
    push(this.ix.byTag, c.name, c)
    if (c.attribs.id !== undefined) push(this.ix.byId, c.attribs.id, c)
    this.all.push(c)
    return c
  }

  ontext (start: number, end: number): void { this.text(start, end, null) }
  ontextentity (): void { /* entities are not decoded by this tokenizer */ }

  /** Adds text; `literal` is text that does not come from the source as such (CDATA in foreign content). */
  text (start: number, end: number, literal: string | null): void {
    if (this.mode !== IN_BODY && literal === null && this.textBeforeBody(start, end)) return
    this.addText(this.top(), start, end, literal)
  }

  addText (parent: ParentNode, start: number, end: number, literal: string | null): void {
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

  /**
   * Text outside <body>: whitespace stays where it is, anything else starts the body (implied if need be).
   * True when the text has been placed.
   */
  textBeforeBody (start: number, end: number): boolean {
    const top = this.top()
    const mode = this.mode
    if (mode === IN_HEAD ? top !== this.head : mode < IN_HEAD || mode === AFTER_HEAD ? top !== this.doc && top !== this.html : false) return false
    nonSpace.lastIndex = start
    const m = nonSpace.exec(this.src)
    const k = m === null || m.index >= end ? end : m.index
    // Whitespace before <head> is dropped (as HTML does); after </body> it goes into the current node, outside the
    // body's source slice.
    const dropped = mode === BEFORE_HTML || mode === BEFORE_HEAD
    if (dropped && start < k && this.html !== null) this.html.verbatim = false
    if (k === end) {
      if (mode >= AFTER_BODY && this.bodyEnd >= 0 && this.body !== null) this.body.verbatim = false
      return dropped
    }
    if (k > start && !dropped) this.addText(top, start, k, null)
    this.beforeBody('', 0, k)
    this.addText(this.top(), k, end, null)
    return true
  }

  /** Whether the current raw-text element was opened where the tokenizer reads it raw (not inside SVG/MathML). */
  rawContext (): boolean {
    return this.foreign.length < 2 || this.foreign[this.foreign.length - 1] === NONE
  }

  /** Where a comment goes: after `</body>` into <html>, after `</html>` into the document. */
  commentParent (): ParentNode {
    if (this.mode === AFTER_BODY && this.html !== null) return this.html
    if (this.mode === AFTER_HTML) return this.doc
    return this.top()
  }

  oncomment (start: number, end: number, offset: number): void {
    const data = this.src.slice(start, end - offset)
    const parent = this.commentParent()
    append(parent, new Comment(data))
    const clean = offset === 2 && this.src.startsWith('<!--', start - 4) && !data.includes('--') &&
      data[0] !== '>' && !data.startsWith('->')
    if (!clean) { if (parent.type === 'root') this.taint(); else (parent as SourceElement).verbatim = false }
  }

  oncdata (start: number, end: number, offset: number): void {
    const value = this.src.slice(start, end - offset)
    this.taint()
    if (this.isInForeignContext()) this.text(start, end, value)
    else append(this.top(), new Comment(`[CDATA[${value}]]`))
  }

  ondeclaration (start: number, end: number): void {
    if (this.mode === BEFORE_HTML) this.quirks = quirksDoctype('!' + this.src.slice(start, end))
    append(this.mode >= AFTER_BODY ? this.doc : this.top(), new ProcessingInstruction('!doctype', '!' + this.src.slice(start, end)))
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
    const st = this.stack
    const cut = this.opening
    if (cut !== null && st[st.length - 1] === cut) {
      // A start tag cut off by the end of input never joined the tree (as with htmlparser2's DomHandler).
      st.pop()
      this.infos[st.length].open--
      if (cut === this.html) { this.html = null; this.mode = BEFORE_HTML } else if (cut === this.head) { this.head = null; this.mode = BEFORE_HEAD } else if (cut === this.body) { this.body = null; this.mode = AFTER_HEAD }
      this.opening = null
    }
    if (this.mode < IN_BODY) this.beforeBody('', 0, this.src.length)
    while (st.length > 0) {
      const el = st[st.length - 1]
      if (el === this.body && this.bodyEnd >= 0) this.pop(this.bodyEnd)
      else if (el === this.html && this.htmlEnd >= 0) this.pop(this.htmlEnd)
      else this.pop(-1)
    }
  }
}

/**
 * Parses an HTML page into a domhandler tree with start/end indices, the
 * selector index already built, and per-element `verbatim` marks.
 */
export function parsePage (html: string, opts?: { readonly tokenizer?: 'auto' | 'full' }): SourceDocument {
  if (opts?.tokenizer !== 'full') {
    const fast = new Builder(html, { checkNames: false, selfClosing: false })
    if (fastScan(html, fast)) return fast.doc
  }
  const b = new Builder(html, { checkNames: true, selfClosing: false })
  const t = new Tokenizer({ decodeEntities: false }, b)
  t.write(html)
  t.end()
  return b.doc
}

/**
 * Parses a theme page: the content parser's tree building, except that `/>`
 * closes any element (`<script src="x"/>`, `<div id="messages"/>`), as
 * libxml2, and so Diazo, reads theme files written as XHTML.
 */
export function parseTheme (html: string): SourceDocument {
  const b = new Builder(html, { checkNames: true, selfClosing: true })
  const t = new Tokenizer({ decodeEntities: false, recognizeSelfClosing: true }, b)
  t.write(html)
  t.end()
  return b.doc
}
