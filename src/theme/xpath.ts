/**
 * XPath 1.0 evaluator over domhandler trees (see `xpath-parse.ts` for the
 * grammar). Attributes are materialised as light `XAttr` objects only when a
 * path walks the attribute axis.
 */
import type { AnyNode, Document, Element, ParentNode } from 'domhandler'
import type { NodeTest, Step, XExpr } from './xpath-parse.ts'
import { indexOf } from './dom-index.ts'

export interface XAttr { readonly type: 'xattr', readonly name: string, readonly value: string, readonly parent: Element }
export type XNode = AnyNode | XAttr
export type XValue = XNode[] | string | number | boolean

/** Variable values: parameters are strings; a variable computed from the document may hold any XPath value. */
export type XVars = Readonly<Record<string, XValue>>

export interface XContext { node: XNode, pos: number, size: number, vars: XVars }

function isAttr (n: XNode): n is XAttr { return n.type === 'xattr' }
function isElement (n: XNode): n is Element { return n.type === 'tag' || n.type === 'script' || n.type === 'style' }
function hasChildren (n: XNode): n is ParentNode { return n.type === 'tag' || n.type === 'script' || n.type === 'style' || n.type === 'root' }
/** Doctypes and CDATA wrappers are invisible to XPath. */
function visible (n: AnyNode): boolean { return n.type !== 'directive' && n.type !== 'cdata' }

export function rootOf (n: XNode): XNode {
  let cur: XNode = isAttr(n) ? n.parent : n
  while (cur.parent !== null) cur = cur.parent as XNode
  return cur
}

export function stringValue (n: XNode): string {
  if (isAttr(n)) return n.value
  if (n.type === 'text' || n.type === 'comment') return n.data
  if (n.type === 'directive') return ''
  if (!hasChildren(n)) return ''
  let s = ''
  const stack: AnyNode[] = [...n.children].reverse()
  while (stack.length > 0) {
    const c = stack.pop() as AnyNode
    if (c.type === 'text') s += c.data
    else if (c.type === 'cdata' || c.type === 'tag' || c.type === 'script' || c.type === 'style') {
      for (let i = c.children.length - 1; i >= 0; i--) stack.push(c.children[i])
    }
  }
  return s
}

/** XPath's string(): a node-set gives its first node's string value. */
export function toStr (v: XValue): string {
  if (typeof v === 'string') return v
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : Number.isNaN(v) ? 'NaN' : String(v)
  return v.length === 0 ? '' : stringValue(v[0])
}

function toNum (v: XValue): number {
  if (typeof v === 'number') return v
  if (typeof v === 'boolean') return v ? 1 : 0
  const s = toStr(v).trim()
  return s === '' ? NaN : Number(s)
}

export function toBool (v: XValue): boolean {
  if (typeof v === 'boolean') return v
  if (typeof v === 'number') return v !== 0 && !Number.isNaN(v)
  return v.length > 0
}

function testNode (n: XNode, test: NodeTest, axis: string): boolean {
  switch (test.k) {
    case 'node': return true
    case 'any': return axis === 'attribute' ? isAttr(n) : isElement(n)
    case 'name': return axis === 'attribute' ? isAttr(n) && n.name === test.n : isElement(n) && n.name === test.n
    case 'text': return n.type === 'text'
    case 'comment': return n.type === 'comment'
    case 'pi': return false
  }
}

/** Pre-order numbering of a tree, built lazily for sorting node-sets into document order. */
const orderCache = new WeakMap<object, Map<AnyNode, number>>()
function docOrder (root: XNode): Map<AnyNode, number> {
  let m = orderCache.get(root)
  if (m !== undefined) return m
  m = new Map()
  let i = 0
  const stack: AnyNode[] = [root as AnyNode]
  while (stack.length > 0) {
    const c = stack.pop() as AnyNode
    m.set(c, i++)
    if (hasChildren(c)) for (let j = c.children.length - 1; j >= 0; j--) stack.push(c.children[j])
  }
  orderCache.set(root, m)
  return m
}

function sortUnique (nodes: XNode[]): XNode[] {
  if (nodes.length < 2) return nodes
  const uniq = [...new Set(nodes)]
  const order = docOrder(rootOf(uniq[0]))
  const key = (n: XNode): number => isAttr(n) ? (order.get(n.parent) ?? 0) + 0.5 : (order.get(n) ?? 0)
  return uniq.sort((a, b) => key(a) - key(b))
}

function pushDescendants (n: XNode, out: XNode[], step: Step): void {
  if (!hasChildren(n)) return
  const stack: AnyNode[] = []
  for (let j = n.children.length - 1; j >= 0; j--) stack.push(n.children[j])
  while (stack.length > 0) {
    const c = stack.pop() as AnyNode
    if (!visible(c)) continue
    if (testNode(c, step.test, step.axis)) out.push(c)
    if (hasChildren(c)) for (let j = c.children.length - 1; j >= 0; j--) stack.push(c.children[j])
  }
}

/** Nodes on `step.axis` from `n` passing the node test, in axis order (reverse axes nearest first). */
function axisNodes (n: XNode, step: Step): XNode[] {
  const out: XNode[] = []
  const add = (c: XNode): void => { if (testNode(c, step.test, step.axis)) out.push(c) }
  switch (step.axis) {
    case 'child': if (hasChildren(n)) for (const c of n.children) if (visible(c)) add(c); break
    case 'descendant': pushDescendants(n, out, step); break
    case 'descendant-or-self': add(n); pushDescendants(n, out, step); break
    case 'self': add(n); break
    case 'parent': if (n.parent !== null) add(n.parent as XNode); break
    case 'ancestor-or-self': case 'ancestor':
      if (step.axis === 'ancestor-or-self') add(n)
      for (let p = n.parent as XNode | null; p !== null; p = p.parent as XNode | null) add(p)
      break
    case 'following-sibling': if (!isAttr(n)) for (let s = n.next; s !== null; s = s.next) if (visible(s)) add(s); break
    case 'preceding-sibling': if (!isAttr(n)) for (let s = n.prev; s !== null; s = s.prev) if (visible(s)) add(s); break
    case 'following': {
      for (let cur: XNode | null = isAttr(n) ? n.parent : n; cur !== null && !isAttr(cur); cur = cur.parent as XNode | null) {
        for (let s = cur.next; s !== null; s = s.next) { if (visible(s)) { add(s); pushDescendants(s, out, step) } }
      }
      break
    }
    case 'preceding': {
      const all: XNode[] = []
      const ancestors = new Set<XNode>()
      for (let p = n.parent as XNode | null; p !== null; p = p.parent as XNode | null) ancestors.add(p)
      const root = rootOf(n)
      pushDescendants(root, all, { axis: 'descendant', test: step.test, preds: [] })
      const order = docOrder(root)
      const me = order.get(isAttr(n) ? n.parent : n) ?? 0
      for (let i = all.length - 1; i >= 0; i--) {
        const c = all[i]
        if ((order.get(c as AnyNode) ?? 0) < me && !ancestors.has(c)) out.push(c)
      }
      break
    }
    case 'attribute':
      if (isElement(n)) for (const name in n.attribs) add({ type: 'xattr', name, value: n.attribs[name], parent: n })
      break
  }
  return out
}

function filterPreds (nodes: XNode[], preds: XExpr[], vars: XVars): XNode[] {
  for (const p of preds) {
    const size = nodes.length
    const kept: XNode[] = []
    for (let i = 0; i < size; i++) {
      const v = evaluate(p, { node: nodes[i], pos: i + 1, size, vars })
      if (typeof v === 'number' ? v === i + 1 : toBool(v)) kept.push(nodes[i])
    }
    nodes = kept
  }
  return nodes
}

function evalPath (e: Extract<XExpr, { t: 'path' }>, ctx: XContext): XNode[] {
  let nodes: XNode[]
  if (e.filter !== null) {
    const v = evaluate(e.filter, ctx)
    if (!Array.isArray(v)) {
      if (e.steps.length === 0 && e.fpreds.length === 0) return []
      throw new Error('a path step follows a value that is not a node-set')
    }
    nodes = filterPreds(v, e.fpreds, ctx.vars)
  } else nodes = [e.abs ? rootOf(ctx.node) : ctx.node]
  let steps = e.steps
  const s0 = steps[0]
  // `//name...` from the document root: take the candidates from the index instead of walking the tree.
  if (e.abs && s0 !== undefined && s0.axis === 'descendant' && s0.test.k === 'name' && nodes[0].type === 'root') {
    nodes = filterPreds(indexOf(nodes[0]).byTag.get(s0.test.n) ?? [], s0.preds, ctx.vars)
    steps = steps.slice(1)
    if (nodes.length === 0) return nodes
  }
  for (const step of steps) {
    if (nodes.length === 1) nodes = filterPreds(axisNodes(nodes[0], step), step.preds, ctx.vars)
    else {
      const next: XNode[] = []
      for (const n of nodes) for (const r of filterPreds(axisNodes(n, step), step.preds, ctx.vars)) next.push(r)
      nodes = sortUnique(next)
    }
    if (nodes.length === 0) return nodes
  }
  if (nodes.length > 1 && isReverseOnly(e.steps)) nodes = sortUnique(nodes)
  return nodes
}

function isReverseOnly (steps: Step[]): boolean {
  const last = steps[steps.length - 1]
  return last !== undefined && (last.axis === 'ancestor' || last.axis === 'ancestor-or-self' || last.axis === 'preceding' || last.axis === 'preceding-sibling')
}

function compare (op: string, a: XValue, b: XValue): boolean {
  // XPath 1.0 §3.4: node-set comparisons hold when any member satisfies them.
  if (Array.isArray(a) && Array.isArray(b)) {
    const bs = b.map(stringValue)
    return a.some(x => { const s = stringValue(x); return bs.some(y => scalarCmp(op, s, y)) })
  }
  if (Array.isArray(a)) return a.some(x => scalarCmp(op, coerceLike(stringValue(x), b), b))
  if (Array.isArray(b)) return b.some(y => scalarCmp(op, a, coerceLike(stringValue(y), a)))
  return scalarCmp(op, a, b)
}

function coerceLike (s: string, other: XValue): XValue {
  if (typeof other === 'number') return toNum(s)
  if (typeof other === 'boolean') return s.length > 0
  return s
}

function scalarCmp (op: string, a: XValue, b: XValue): boolean {
  if (op === '=' || op === '!=') {
    let eq: boolean
    if (typeof a === 'boolean' || typeof b === 'boolean') eq = toBool(a) === toBool(b)
    else if (typeof a === 'number' || typeof b === 'number') eq = toNum(a) === toNum(b)
    else eq = toStr(a) === toStr(b)
    return op === '=' ? eq : !eq
  }
  const x = toNum(a); const y = toNum(b)
  return op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y
}

function nodeName (v: XValue | undefined, ctx: XContext): string {
  const n = v === undefined ? ctx.node : Array.isArray(v) ? v[0] : undefined
  if (n === undefined) return ''
  if (isAttr(n)) return n.name
  return isElement(n) ? n.name : ''
}

function callFn (name: string, args: XExpr[], ctx: XContext): XValue {
  const a = (i: number): XValue => evaluate(args[i], ctx)
  const s = (i: number): string => i < args.length ? toStr(a(i)) : stringValue(ctx.node)
  switch (name) {
    case 'last': return ctx.size
    case 'position': return ctx.pos
    case 'count': { const v = a(0); if (!Array.isArray(v)) throw new Error('count() needs a node-set'); return v.length }
    case 'local-name': case 'name': return nodeName(args.length > 0 ? a(0) : undefined, ctx)
    case 'string': return s(0)
    case 'concat': return args.map((_, i) => toStr(a(i))).join('')
    case 'starts-with': return s(0).startsWith(s(1))
    case 'ends-with': return s(0).endsWith(s(1))
    case 'contains': return s(0).includes(s(1))
    case 'substring-before': { const x = s(0); const i = x.indexOf(s(1)); return i < 0 ? '' : x.slice(0, i) }
    case 'substring-after': { const x = s(0); const y = s(1); const i = x.indexOf(y); return i < 0 ? '' : x.slice(i + y.length) }
    case 'substring': {
      const x = s(0); const start = Math.round(toNum(a(1)))
      const end = args.length > 2 ? start + Math.round(toNum(a(2))) : Infinity
      let out = ''
      for (let i = 1; i <= x.length; i++) if (i >= start && i < end) out += x[i - 1]
      return out
    }
    case 'string-length': return s(0).length
    case 'normalize-space': return s(0).trim().replace(/\s+/g, ' ')
    case 'translate': {
      const from = s(1); const to = s(2)
      return [...s(0)].map(c => { const i = from.indexOf(c); return i < 0 ? c : (to[i] ?? '') }).join('')
    }
    case 'not': return !toBool(a(0))
    case 'true': return true
    case 'false': return false
    case 'boolean': return toBool(a(0))
    case 'number': return args.length > 0 ? toNum(a(0)) : toNum(stringValue(ctx.node))
    case 'sum': { const v = a(0); return Array.isArray(v) ? v.reduce((t, n) => t + toNum(stringValue(n)), 0) : NaN }
    case 'floor': return Math.floor(toNum(a(0)))
    case 'ceiling': return Math.ceil(toNum(a(0)))
    case 'round': return Math.round(toNum(a(0)))
    case 'lower-case': return s(0).toLowerCase()
    case 'upper-case': return s(0).toUpperCase()
  }
  throw new Error(`unsupported function ${name}()`)
}

export function evaluate (e: XExpr, ctx: XContext): XValue {
  switch (e.t) {
    case 'path': return evalPath(e, ctx)
    case 'or': return toBool(evaluate(e.a, ctx)) || toBool(evaluate(e.b, ctx))
    case 'and': return toBool(evaluate(e.a, ctx)) && toBool(evaluate(e.b, ctx))
    case 'cmp': return compare(e.op, evaluate(e.a, ctx), evaluate(e.b, ctx))
    case 'arith': {
      const x = toNum(evaluate(e.a, ctx)); const y = toNum(evaluate(e.b, ctx))
      return e.op === '+' ? x + y : e.op === '-' ? x - y : e.op === '*' ? x * y : e.op === 'div' ? x / y : x % y
    }
    case 'neg': return -toNum(evaluate(e.a, ctx))
    case 'union': {
      const x = evaluate(e.a, ctx); const y = evaluate(e.b, ctx)
      if (!Array.isArray(x) || !Array.isArray(y)) throw new Error('| needs node-sets on both sides')
      return sortUnique([...x, ...y])
    }
    case 'str': return e.v
    case 'num': return e.v
    case 'var': {
      const v = ctx.vars[e.name]
      return v === undefined ? '' : v
    }
    case 'fn': return callFn(e.name, e.args, ctx)
  }
}

/** Evaluates a selector expression against a document, returning the matched nodes in document order. */
export function selectXPath (e: XExpr, doc: Document, vars: XVars = {}): XNode[] {
  const v = evaluate(e, { node: doc, pos: 1, size: 1, vars })
  return Array.isArray(v) ? v : []
}
