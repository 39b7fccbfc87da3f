/**
 * A per-document index of elements by id, class and tag, built in one walk
 * the first time a selector needs it. A typical rule set runs about ten
 * selectors over each content page; answering `#content`, `.x` or `//p`
 * from the index instead of ten full-tree scans is most of the transform's
 * selector cost.
 */
import type { AnyNode, Document, Element } from 'domhandler'

export interface DomIndex {
  readonly byId: Map<string, Element[]>
  /** Complete when `all` is null; otherwise filled per class on first use (see classList). */
  readonly byClass: Map<string, Element[]>
  readonly byTag: Map<string, Element[]>
  /** Document position of each node; null when every node carries `startIndex` (parse.ts builds those). */
  readonly order: Map<AnyNode, number> | null
  /**
   * Every element in document order, when classes are indexed lazily. Splitting every class attribute of
   * a page cost a quarter of the parse in bench/theme.ts, while a rule set asks for a handful of classes.
   */
  readonly all: Element[] | null
}

/** Elements whose class attribute lists `name` (split on `\s`, as css-select does), in document order. */
export function classList (ix: DomIndex, name: string): Element[] {
  let l = ix.byClass.get(name)
  if (l !== undefined || ix.all === null) return l ?? []
  l = []
  for (const el of ix.all) {
    const cls = el.attribs.class
    if (cls !== undefined && (cls === name || (cls.includes(name) && cls.split(ws).includes(name)))) l.push(el)
  }
  ix.byClass.set(name, l)
  return l
}

const cache = new WeakMap<Document, DomIndex>()
const ws = /\s+/

function push (m: Map<string, Element[]>, k: string, el: Element): void {
  const l = m.get(k)
  if (l === undefined) m.set(k, [el]); else l.push(el)
}

/** A document that carries its own index (parse.ts builds it while parsing). */
interface Indexed { readonly domIndex?: DomIndex }

export function indexOf (doc: Document): DomIndex {
  // Not in the WeakMap: a WeakMap keyed by a young document makes every scavenge keep (and promote) the
  // whole tree through the index, which cost more than the parse itself in bench/theme.ts.
  const own = (doc as Indexed).domIndex
  if (own !== undefined) return own
  let ix = cache.get(doc)
  if (ix !== undefined) return ix
  const order = new Map<AnyNode, number>()
  ix = { byId: new Map(), byClass: new Map(), byTag: new Map(), order, all: null }
  let i = 0
  const stack: AnyNode[] = [doc]
  while (stack.length > 0) {
    const n = stack.pop() as AnyNode
    order.set(n, i++)
    if (n.type === 'tag' || n.type === 'script' || n.type === 'style') {
      push(ix.byTag, n.name, n)
      const id = n.attribs.id
      if (id !== undefined) push(ix.byId, id, n)
      const cls = n.attribs.class
      if (cls !== undefined && cls !== '') for (const c of cls.split(ws)) if (c !== '') push(ix.byClass, c, n)
    }
    if ('children' in n) for (let j = n.children.length - 1; j >= 0; j--) stack.push(n.children[j])
  }
  cache.set(doc, ix)
  return ix
}

/** What the rightmost compound of each comma group requires, when every group has an id, class or tag. */
export type IndexKey = ReadonlyArray<{ readonly k: 'id' | 'class' | 'tag', readonly v: string }>

export function cssIndexKey (src: string): IndexKey | null {
  if (src.includes('(') || src.includes('\\')) return null
  const stripped = src.replace(/\[[^\]]*\]/g, '[]')
  const keys: Array<{ k: 'id' | 'class' | 'tag', v: string }> = []
  for (const group of stripped.split(',')) {
    const parts = group.trim().split(/\s*[>+~]\s*|\s+/)
    const last = parts[parts.length - 1]
    if (last === undefined || last === '') return null
    const id = /#([\w-]+)/.exec(last)
    const cls = /\.([\w-]+)/.exec(last)
    const tag = /^([a-zA-Z][\w-]*)/.exec(last)
    if (id !== null) keys.push({ k: 'id', v: id[1] })
    else if (cls !== null) keys.push({ k: 'class', v: cls[1] })
    else if (tag !== null) keys.push({ k: 'tag', v: tag[1].toLowerCase() })
    else return null
  }
  return keys
}

/** Candidate elements for a key, in document order (a superset of the matches). */
export function candidates (ix: DomIndex, key: IndexKey): Element[] {
  const lists = key.map(({ k, v }) => k === 'class' ? classList(ix, v) : (k === 'id' ? ix.byId : ix.byTag).get(v) ?? [])
  if (lists.length === 1) return lists[0]
  const all = [...new Set(lists.flat())]
  const order = ix.order
  if (order === null) return all.sort((a, b) => (a.startIndex ?? 0) - (b.startIndex ?? 0))
  return all.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0))
}
