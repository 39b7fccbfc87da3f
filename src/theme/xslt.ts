/**
 * The inline XSLT subset Diazo rule bodies commonly carry (xsl:copy-of, copy, value-of, apply-templates, if, choose,
 * for-each, attribute, element, text, and attribute value templates), as plain data evaluated per request
 * against the content page. Only rules whose bodies use it pay for it: every other rule keeps its markup as one
 * precomputed string.
 */
import type { Document } from 'domhandler'
import { attrsHtml, escapeText, voidElements } from './html.ts'
import type { Sel } from './select.ts'
import { parseXPath, type XExpr } from './xpath-parse.ts'
import { evaluate, rootOf, stringValue, toBool, toStr, type XNode, type XValue, type XVars } from './xpath.ts'

/** An attribute value template: literal text and `{expr}` parts. */
export type Avt = ReadonlyArray<string | XExpr>

export type Tpl =
  /** Markup that does not depend on the page. */
  | { readonly k: 'html', readonly html: string }
  | { readonly k: 'text', readonly text: string, readonly raw: boolean }
  /** An inline `<include>`: the index into the rule's inlineIncludes. */
  | { readonly k: 'include', readonly i: number }
  /** xsl:copy-of (`rules` false) and xsl:apply-templates (`rules` true: the content-side rules apply to the copy). */
  | { readonly k: 'copy', readonly sel: Sel, readonly rules: boolean }
  | { readonly k: 'value', readonly sel: Sel }
  /** xsl:choose, and xsl:if as a choose of one branch. */
  | { readonly k: 'choose', readonly when: ReadonlyArray<{ readonly test: Sel, readonly body: readonly Tpl[] }>, readonly otherwise: readonly Tpl[] }
  | { readonly k: 'each', readonly sel: Sel, readonly body: readonly Tpl[] }
  /** A literal result element with templates in its attributes or XSLT inside, or xsl:element. */
  | { readonly k: 'elem', readonly name: Avt, readonly attrs: ReadonlyArray<readonly [string, Avt]>, readonly body: readonly Tpl[] }
  | { readonly k: 'attr', readonly name: Avt, readonly body: readonly Tpl[] }
  /** A local xsl:variable: its value is visible to the instructions after it (and inside them). */
  | { readonly k: 'let', readonly name: string, readonly sel: Sel }
  /** xsl:copy: the context node without its attributes or children, with `body` inside. */
  | { readonly k: 'shallow', readonly body: readonly Tpl[] }

/**
 * Attributes that attribute nodes (xsl:copy-of of `@x`) or xsl:attribute set on the element being written: as in
 * XSLT, only while that element has no children yet.
 */
export interface AttrSink { readonly attrs: Map<string, string>, open: boolean }

/** What the evaluator needs from the request it runs in. */
export interface XslEnv {
  readonly vars: XVars
  /** A CSS selection over the page (memoised by the caller). */
  select: (sel: Sel, doc: Document) => XNode[]
  /** Content nodes as markup: untouched, or (`rules`) with the content-side rules applied. */
  copy: (nodes: readonly XNode[], rules: boolean, sink: AttrSink | undefined) => string
  include: (i: number, sink: AttrSink | undefined) => string
}

interface Ctx { readonly node: XNode, readonly pos: number, readonly size: number }

const nameRe = /^[A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?$/

/** Parses `a{expr}b`, with `{{` / `}}` for literal braces (XSLT 1.0 §7.6.2). Throws on an unbalanced brace. */
export function parseAvt (src: string): Avt {
  const out: Array<string | XExpr> = []
  let lit = ''
  for (let i = 0; i < src.length; i++) {
    const c = src[i]
    if (c === '}') {
      if (src[i + 1] !== '}') throw new Error(`unbalanced "}" in attribute value template "${src}"`)
      lit += '}'; i++; continue
    }
    if (c !== '{') { lit += c; continue }
    if (src[i + 1] === '{') { lit += '{'; i++; continue }
    let j = i + 1
    let quote = ''
    for (; j < src.length; j++) {
      const d = src[j]
      if (quote !== '') { if (d === quote) quote = ''; continue }
      if (d === '"' || d === '\'') quote = d
      else if (d === '}') break
    }
    if (j >= src.length) throw new Error(`unclosed "{" in attribute value template "${src}"`)
    if (lit !== '') { out.push(lit); lit = '' }
    const expr = src.slice(i + 1, j)
    try { out.push(parseXPath(expr)) } catch (err) { throw new Error(`unsupported expression "${expr}" in "${src}": ${(err as Error).message}`) }
    i = j
  }
  if (lit !== '' || out.length === 0) out.push(lit)
  return out
}

/** True when a value needs the template machinery at all. */
export function isAvt (src: string): boolean { return src.includes('{') || src.includes('}') }

/** Folds subtrees that do not depend on the page back into markup strings. */
export function foldStatic (tpls: readonly Tpl[]): Tpl[] {
  const out: Tpl[] = []
  const push = (html: string): void => {
    const last = out[out.length - 1]
    if (last !== undefined && last.k === 'html') out[out.length - 1] = { k: 'html', html: last.html + html }
    else if (html !== '') out.push({ k: 'html', html })
  }
  for (const t of tpls) {
    if (t.k === 'text') { push(t.raw ? t.text : escapeText(t.text)); continue }
    if (t.k === 'elem') {
      const body = foldStatic(t.body)
      const name = t.name.length === 1 && typeof t.name[0] === 'string' ? t.name[0] : null
      const attrs = t.attrs.every(([, v]) => v.every(p => typeof p === 'string')) ? t.attrs.map(([k, v]) => [k, v.join('')] as const) : null
      if (name !== null && attrs !== null && body.every(b => b.k === 'html')) {
        push(elementHtml(name, new Map(attrs), body.map(b => b.k === 'html' ? b.html : '').join('')))
        continue
      }
      out.push({ ...t, body })
      continue
    }
    if (t.k === 'choose') out.push({ k: 'choose', when: t.when.map(w => ({ test: w.test, body: foldStatic(w.body) })), otherwise: foldStatic(t.otherwise) })
    else if (t.k === 'each' || t.k === 'shallow') out.push({ ...t, body: foldStatic(t.body) })
    else out.push(t)
  }
  return out
}

function elementHtml (name: string, attrs: Map<string, string>, inner: string): string {
  const open = `<${name}${attrsHtml(Object.fromEntries(attrs), name)}>`
  return voidElements.has(name) ? open : `${open}${inner}</${name}>`
}

function value (sel: Sel, ctx: Ctx, env: XslEnv): XValue {
  if (sel.kind === 'css') return env.select(sel, rootOf(ctx.node) as Document)
  return evaluate(sel.ast, { node: ctx.node, pos: ctx.pos, size: ctx.size, vars: env.vars })
}

function avt (a: Avt, ctx: Ctx, env: XslEnv): string {
  let s = ''
  for (const p of a) s += typeof p === 'string' ? p : toStr(evaluate(p, { node: ctx.node, pos: ctx.pos, size: ctx.size, vars: env.vars }))
  return s
}

function branch (t: Extract<Tpl, { k: 'choose' }>, ctx: Ctx, env: XslEnv): readonly Tpl[] {
  for (const w of t.when) if (toBool(value(w.test, ctx, env))) return w.body
  return t.otherwise
}

function nodeSet (v: XValue): XNode[] { return Array.isArray(v) ? v : [] }

/** Runs a rule body with `node` as the context node; markup out, attributes into `sink`. */
export function runTemplate (tpls: readonly Tpl[], node: XNode, env: XslEnv, sink?: AttrSink): string {
  return run(tpls, { node, pos: 1, size: 1 }, env, sink)
}

function bind (t: Extract<Tpl, { k: 'let' }>, ctx: Ctx, env: XslEnv): XslEnv {
  return { ...env, vars: { ...env.vars, [t.name]: value(t.sel, ctx, env) } }
}

function run (tpls: readonly Tpl[], ctx: Ctx, env: XslEnv, sink: AttrSink | undefined): string {
  let out = ''
  const wrote = (s: string): void => { if (s !== '') { out += s; if (sink !== undefined) sink.open = false } }
  for (const t of tpls) {
    switch (t.k) {
      case 'let': env = bind(t, ctx, env); break
      case 'html': wrote(t.html); break
      case 'text': wrote(t.raw ? t.text : escapeText(t.text)); break
      case 'include': out += env.include(t.i, sink); break
      case 'copy': {
        const v = value(t.sel, ctx, env)
        if (Array.isArray(v)) out += env.copy(v, t.rules, sink)
        else wrote(escapeText(toStr(v)))
        break
      }
      case 'value': wrote(escapeText(toStr(value(t.sel, ctx, env)))); break
      case 'choose': out += run(branch(t, ctx, env), ctx, env, sink); break
      case 'each': {
        const nodes = nodeSet(value(t.sel, ctx, env))
        for (let i = 0; i < nodes.length; i++) out += run(t.body, { node: nodes[i], pos: i + 1, size: nodes.length }, env, sink)
        break
      }
      case 'elem': {
        const name = avt(t.name, ctx, env).trim()
        const own: AttrSink = { attrs: new Map(), open: true }
        for (const [k, v] of t.attrs) own.attrs.set(k, avt(v, ctx, env))
        const inner = run(t.body, ctx, env, own)
        // XSLT's recovery for an element name that is not a QName: the content is written without the element.
        wrote(nameRe.test(name) ? elementHtml(name.toLowerCase(), own.attrs, inner) : inner)
        break
      }
      case 'shallow': {
        const n = ctx.node
        if (n.type === 'xattr') { if (sink !== undefined && sink.open) sink.attrs.set(n.name, n.value); break }
        if (n.type === 'text') { wrote(escapeText(n.data)); break }
        if (n.type === 'comment') { wrote(`<!--${n.data}-->`); break }
        if (n.type === 'tag' || n.type === 'script' || n.type === 'style') {
          const own: AttrSink = { attrs: new Map(), open: true }
          const inner = run(t.body, ctx, env, own)
          wrote(elementHtml(n.name, own.attrs, inner))
        } else out += run(t.body, ctx, env, sink)
        break
      }
      case 'attr': {
        const name = avt(t.name, ctx, env).trim()
        // Added to the element being written while it has no children yet; ignored elsewhere (XSLT's recovery).
        if (sink !== undefined && sink.open && nameRe.test(name)) sink.attrs.set(name, text(t.body, ctx, env))
        break
      }
    }
  }
  return out
}

/** The text an xsl:attribute body makes: elements inside it are ignored, as XSLT's recovery does. */
function text (tpls: readonly Tpl[], ctx: Ctx, env: XslEnv): string {
  let out = ''
  for (const t of tpls) {
    switch (t.k) {
      case 'let': env = bind(t, ctx, env); break
      case 'text': out += t.text; break
      case 'value': out += toStr(value(t.sel, ctx, env)); break
      case 'copy': { const v = value(t.sel, ctx, env); out += Array.isArray(v) ? v.map(stringValue).join('') : toStr(v); break }
      case 'choose': out += text(branch(t, ctx, env), ctx, env); break
      case 'shallow': {
        const n = ctx.node
        out += n.type === 'xattr' ? n.value : n.type === 'text' ? n.data : ''
        break
      }
      case 'each': {
        const nodes = nodeSet(value(t.sel, ctx, env))
        for (let i = 0; i < nodes.length; i++) out += text(t.body, { node: nodes[i], pos: i + 1, size: nodes.length }, env)
        break
      }
      default: break
    }
  }
  return out
}
