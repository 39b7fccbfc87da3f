/**
 * The nodes the content parser builds: domhandler-shaped elements and text made
 * from literals, the document that carries the source text and selector index,
 * and the sibling-link bookkeeping of appending and detaching.
 */
import { Document, type AnyNode, type Element, type ParentNode, type Text } from 'domhandler'
import type { DomIndex } from './dom-index.ts'

/**
 * An element that knows whether `source.slice(startIndex, endIndex + 1)`
 * reads back as exactly the subtree: every element in it was closed by its
 * own end tag, and nothing in it is something the serialiser would rewrite.
 */
export type SourceElement = Element & { verbatim: boolean }

export function isVerbatim (n: AnyNode): n is SourceElement { return (n as Partial<SourceElement>).verbatim === true }

/*
 * Elements and text nodes are instances of two field-only classes with the
 * fields of domhandler's classes (which is all css-select, domutils and this
 * module read): building them costs a third of running domhandler's
 * constructor chain, and a page has thousands. Casts are confined to these
 * two functions.
 *
 * Not object literals: V8 tracks an allocation site per literal and
 * pretenures it (allocates straight into the old generation) once most of
 * what it made survives a scavenge, which a tree being built always does.
 * Under --max-semi-space-size=2 (src/node-flags.ts) the parser's literals were
 * pretenured, every page's tree became old-generation garbage, and theming a
 * page cost 1.8-1.9 ms of CPU instead of 0.8-1.0 ms, most of it in major GCs
 * (1,500 pages: 6-9 mark-compacts against 1). Objects made by `new` of a
 * class carry no allocation site, nor does an empty `{}`; `children` comes
 * from `new Array()`, because `[]` is a literal with a site of its own (with
 * `this.children = []` the tree was pretenured again). `noChildren.slice()`
 * and `Array.of()` avoid the site too but cost 30-40% more per page.
 */

class SourceElementNode {
  type: string
  name: string
  attribs: Record<string, string>
  children: AnyNode[]
  parent: ParentNode | null = null
  prev: AnyNode | null = null
  next: AnyNode | null = null
  startIndex: number | null
  endIndex: number | null = null
  verbatim = true

  constructor (name: string, start: number) {
    this.type = name === 'script' ? 'script' : name === 'style' ? 'style' : 'tag'
    this.name = name
    this.attribs = {}
    this.children = new Array<AnyNode>()
    this.startIndex = start
  }
}

class TextNode {
  readonly type = 'text'
  data: string
  parent: ParentNode | null = null
  prev: AnyNode | null = null
  next: AnyNode | null = null
  startIndex: number | null
  endIndex: number | null

  constructor (data: string, start: number | null, end: number) {
    this.data = data
    this.startIndex = start
    this.endIndex = end
  }
}

export function newElement (name: string, start: number): SourceElement {
  return new SourceElementNode(name, start) as unknown as SourceElement
}

export function newText (data: string, start: number | null, end: number): Text {
  return new TextNode(data, start, end) as unknown as Text
}

/** A parsed content page; `source` is the text the indices refer to. */
export class SourceDocument extends Document {
  source = ''
  readonly elements: Element[] = []
  domIndex: DomIndex = { byId: new Map(), byClass: new Map(), byTag: new Map(), order: null, all: this.elements }
}

export function push (m: Map<string, Element[]>, k: string, el: Element): void {
  const l = m.get(k)
  if (l === undefined) m.set(k, [el]); else l.push(el)
}

export function append (parent: ParentNode, node: AnyNode): void {
  const kids = parent.children
  const prev = kids.length === 0 ? null : kids[kids.length - 1]
  kids.push(node)
  node.parent = parent
  node.prev = prev
  node.next = null
  if (prev !== null) prev.next = node
}

export function detach (node: AnyNode): void {
  const p = node.parent
  if (p === null) return
  const kids = p.children
  const i = kids.lastIndexOf(node)
  if (i >= 0) kids.splice(i, 1)
  if (node.prev !== null) node.prev.next = node.next
  if (node.next !== null) node.next.prev = node.prev
  node.parent = null; node.prev = null; node.next = null
}
