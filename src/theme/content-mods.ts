/**
 * The content-side edits one transform collects per document (drops,
 * strips, dropped attributes, markup placed around or inside nodes), frozen
 * into the ContentMods the serialiser applies as it writes the document.
 */
import type { AnyNode } from 'domhandler'
import type { ContentMods, ContentWrap } from './html.ts'

/** No edits: the serialiser may copy every verbatim subtree from the source. */
export const noMods: ContentMods = { drop: new Set(), strip: new Set(), dropAttrs: new Map(), wrap: new Map(), touched: new Set() }

/** Collects one document's content-side results, then freezes them into ContentMods. */
export class ModsBuilder {
  readonly drop = new Set<AnyNode>()
  readonly strip = new Set<AnyNode>()
  readonly dropAttrs = new Map<AnyNode, string[]>()
  readonly wrap = new Map<AnyNode, ContentWrap>()

  /** Markup beside (or, with `children`, inside) a node; `replace` takes the node's (or its children's) place. */
  place (n: AnyNode, op: string, children: boolean, html: string): void {
    let w = this.wrap.get(n)
    if (w === undefined) { w = { before: '', after: '', replace: null, innerBefore: '', innerAfter: '' }; this.wrap.set(n, w) }
    if (!children) {
      if (op === 'before') w.before += html
      else if (op === 'after') w.after += html
      // Each content-side replace is an XSLT template matching the node: of several that match with one priority,
      // XSLT 1.0 §5.5 (and libxslt, under Diazo) takes the last in the stylesheet.
      else if (op === 'replace') w.replace = html
    } else if ('children' in n) {
      if (op === 'before') w.innerBefore += html
      else if (op === 'after') w.innerAfter += html
      else if (op === 'replace') { for (const ch of n.children) this.drop.add(ch); w.innerBefore += html }
    }
  }

  copy (): ModsBuilder {
    const c = new ModsBuilder()
    for (const n of this.drop) c.drop.add(n)
    for (const n of this.strip) c.strip.add(n)
    for (const [n, a] of this.dropAttrs) c.dropAttrs.set(n, a)
    for (const [n, w] of this.wrap) c.wrap.set(n, { ...w })
    return c
  }

  finish (): ContentMods {
    if (this.drop.size + this.strip.size + this.dropAttrs.size + this.wrap.size === 0) return noMods
    const touched = new Set<AnyNode>()
    for (const n of this.drop) touch(touched, n)
    for (const n of this.strip) touch(touched, n)
    for (const n of this.dropAttrs.keys()) touch(touched, n)
    for (const [n, w] of this.wrap) {
      touch(touched, n)
      // Markup inside the node means it cannot be copied from the source as it stands.
      if (w.innerBefore !== '' || w.innerAfter !== '') touched.add(n)
    }
    return { drop: this.drop, strip: this.strip, dropAttrs: this.dropAttrs, wrap: this.wrap, touched }
  }
}

/** Marks the ancestors of `n` as touched, stopping where an earlier walk already went. */
function touch (touched: Set<AnyNode>, n: AnyNode): void {
  for (let p = n.parent; p !== null && !touched.has(p); p = p.parent) touched.add(p)
}
