/**
 * Selectors as plain data: a CSS selector string or a parsed XPath AST.
 * Compiled css-select functions cannot cross a worker boundary, so each
 * thread compiles CSS lazily into a bounded per-thread cache.
 */
import { compile, selectAll } from 'css-select'
import type { AnyNode, Document, Element } from 'domhandler'
import { parseXPath, type XExpr } from './xpath-parse.ts'
import { evaluate, toBool, type XNode, type XVars } from './xpath.ts'
import { candidates, cssIndexKey, indexOf, type IndexKey } from './dom-index.ts'

export type Sel = { readonly kind: 'css', readonly src: string } | { readonly kind: 'xpath', readonly src: string, readonly ast: XExpr }

type Query = ReturnType<typeof compile<AnyNode, Element>>

const cssCache = new Map<string, Query>()
const keyCache = new Map<string, IndexKey | null>()
const cssCacheMax = 2048

function compiledCss (src: string): Query {
  let q = cssCache.get(src)
  if (q === undefined) {
    q = compile<AnyNode, Element>(src)
    if (cssCache.size >= cssCacheMax) { const old = cssCache.keys().next().value as string; cssCache.delete(old); keyCache.delete(old) }
    keyCache.set(src, cssIndexKey(src))
    cssCache.set(src, q)
  }
  return q
}

/** Builds a selector, throwing an Error that says what is unsupported. */
export function makeSelector (kind: 'css' | 'xpath', src: string): Sel {
  if (kind === 'css') {
    if (src.trim() === '') throw new Error('empty CSS selector')
    try { compiledCss(src) } catch (err) {
      throw new Error(`unsupported selector "${src}": ${(err as Error).message}`)
    }
    return { kind: 'css', src }
  }
  try { return { kind: 'xpath', src, ast: parseXPath(src) } } catch (err) {
    throw new Error(`unsupported expression "${src}": ${(err as Error).message}`)
  }
}

/** The nodes a selector matches in a document, in document order. */
export function selectNodes (sel: Sel, doc: Document, vars: XVars): XNode[] {
  if (sel.kind === 'css') {
    const q = compiledCss(sel.src)
    const key = keyCache.get(sel.src)
    if (key == null) return selectAll<AnyNode, Element>(q, doc)
    const out: Element[] = []
    for (const el of candidates(indexOf(doc), key)) if (q(el)) out.push(el)
    return out
  }
  const v = evaluate(sel.ast, { node: doc, pos: 1, size: 1, vars })
  return Array.isArray(v) ? v : []
}

/** A condition's truth: a CSS selector holds when it matches; XPath by its boolean value. */
export function selectorHolds (sel: Sel, doc: Document, vars: XVars): boolean {
  if (sel.kind === 'css') return selectNodes(sel, doc, vars).length > 0
  return toBool(evaluate(sel.ast, { node: doc, pos: 1, size: 1, vars }))
}
