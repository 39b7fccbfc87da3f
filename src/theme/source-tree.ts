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
 * Elements and text nodes are plain objects with the fields of domhandler's
 * classes (which is all css-select, domutils and this module read): building
 * them from literals costs a third of running domhandler's constructor chain,
 * and a page has thousands. Casts are confined to these two functions.
 */
export function newElement (name: string, start: number): SourceElement {
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

export function newText (data: string, start: number | null, end: number): Text {
  const t = { type: 'text', data, parent: null, prev: null, next: null, startIndex: start, endIndex: end }
  return t as unknown as Text
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
