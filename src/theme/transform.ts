/**
 * The per-request half of theming: parse the content page, decide the theme
 * and conditions, fill the compiled template's slots. Synchronous and fed only
 * plain data, so it runs unchanged on worker threads.
 */
import type { AnyNode, Document, Element } from 'domhandler'
import type { Compiled, CompiledTheme, NodeSlot, Seg } from './compile.ts'
import { attrsHtml, escapeAttr, serializeNodes, type ContentMods } from './html.ts'
import { ModsBuilder, noMods } from './content-mods.ts'
import { parsePage } from './parse.ts'
import { SourceDocument } from './source-tree.ts'
import { pathMatches } from './paths.ts'
import type { Cond, Rule } from './rule-set.ts'
import { selectNodes, selectorHolds, type Sel } from './select.ts'
import { evaluate, toBool, type XNode, type XValue } from './xpath.ts'
import { runTemplate, type AttrSink, type XslEnv } from './xslt.ts'

export interface TransformContext {
  /** Request path (no query) for `if-path` and `$path`. */
  readonly path: string
  /** Values of `$name` in `if` expressions; `path` is filled in from `path`. */
  readonly params?: Readonly<Record<string, string>>
  /** HTML of `href` documents, keyed by the href as it appears in `Compiled.hrefs`; missing means unavailable. */
  readonly hrefBodies?: Readonly<Record<string, string>>
  /** When given, filled with what each rule did (for `livery theme --trace`). */
  readonly trace?: TraceRecord
}

export interface RuleTrace {
  /** Each condition's source and whether it held, the last time it was evaluated. */
  conds: Array<{ src: string, held: boolean }>
  applied: number
  /** Applications whose content selector matched nothing. */
  emptyContent: number
  /** Times an earlier rule of the same if/else chain won. */
  superseded: number
  /** Times the rule was not reached because its theme node had been dropped or replaced. */
  evaluated: number
}
export interface TraceRecord { theme: number, notheme: number, rules: Record<number, RuleTrace> }

export type TransformOutcome =
  /** `theme` is -1 for an unthemed page that content-side rules changed (notheme, or no theme matched). */
  | { readonly kind: 'html', readonly html: string, readonly theme: number }
  | { readonly kind: 'notheme' }
  | { readonly kind: 'unavailable', readonly reason: string }

/** A themed page already encoded as UTF-8: what a transform thread hands back (moved, not copied). */
export interface EncodedOutcome { readonly kind: 'encoded', readonly body: Uint8Array, readonly theme: number }

const bodySel: Sel = { kind: 'css', src: 'body' }

export function parseHtml (html: string): Document {
  return parsePage(html)
}

class Run {
  readonly c: Compiled
  readonly doc: Document
  readonly path: string
  readonly vars: Record<string, XValue>
  readonly hrefBodies: Readonly<Record<string, string>>
  readonly trace: TraceRecord | undefined
  readonly condMemo = new Map<Cond, boolean>()
  readonly selMemo = new Map<Document, Map<Sel, XNode[]>>()
  readonly hrefDocs = new Map<string, Document | null>()
  readonly mods = new Map<Document, ContentMods>()

  constructor (c: Compiled, doc: Document, ctx: TransformContext) {
    this.c = c
    this.doc = doc
    this.path = ctx.path === '' ? '/' : ctx.path
    // xsl:param defaults yield to the request's parameters; xsl:variable values do not.
    this.vars = { ...c.paramDefaults, ...ctx.params, ...c.constants, path: this.path }
    for (const v of c.docVars) {
      if (v.param && ctx.params !== undefined && Object.hasOwn(ctx.params, v.name)) continue
      this.vars[v.name] = v.sel.kind === 'css' ? selectNodes(v.sel, doc, this.vars) : evaluate(v.sel.ast, { node: doc, pos: 1, size: 1, vars: this.vars })
    }
    this.hrefBodies = ctx.hrefBodies ?? {}
    this.trace = ctx.trace
  }

  cond (cd: Cond): boolean {
    let v = this.condMemo.get(cd)
    if (v === undefined) {
      switch (cd.t) {
        case 'content': v = cd.sel.kind === 'css' ? this.select(cd.sel, this.doc).length > 0 : selectorHolds(cd.sel, this.doc, this.vars); break
        case 'path': v = cd.pats.some(p => pathMatches(p, this.path)); break
        case 'expr': v = toBool(evaluate(cd.ast, { node: this.doc, pos: 1, size: 1, vars: this.vars })); break
      }
      if (cd.neg) v = !v
      this.condMemo.set(cd, v)
    }
    return v
  }

  holds (conds: readonly Cond[], id?: number): boolean {
    const t = id !== undefined && this.trace !== undefined ? this.traceOf(id) : undefined
    if (t !== undefined) { t.evaluated++; t.conds = conds.map(cd => ({ src: cd.src, held: this.cond(cd) })) }
    for (const cd of conds) if (!this.cond(cd)) return false
    return true
  }

  traceOf (id: number): RuleTrace {
    const rules = (this.trace as TraceRecord).rules
    return (rules[id] ??= { conds: [], applied: 0, emptyContent: 0, superseded: 0, evaluated: 0 })
  }

  select (sel: Sel, doc: Document): XNode[] {
    let m = this.selMemo.get(doc)
    if (m === undefined) { m = new Map(); this.selMemo.set(doc, m) }
    let r = m.get(sel)
    if (r === undefined) { r = selectNodes(sel, doc, this.vars); m.set(sel, r) }
    return r
  }

  hrefDoc (href: string): Document | null {
    let d = this.hrefDocs.get(href)
    if (d === undefined) {
      const body = this.hrefBodies[href]
      d = body === undefined ? null : parseHtml(body)
      this.hrefDocs.set(href, d)
    }
    return d
  }

  docOf (r: Rule): Document | null { return r.href === null ? this.doc : this.hrefDoc(r.href) }

  /** Content-side rules for a document: rules without href apply everywhere, with href only to that document. */
  modsFor (doc: Document): ContentMods {
    let m = this.mods.get(doc)
    if (m !== undefined) return m
    const b = new ModsBuilder()
    this.mods.set(doc, noMods)
    const places: Array<[AnyNode, Rule]> = []
    let xsl = false
    for (const id of this.c.contentRules) {
      const r = this.c.rules[id]
      if (r.content === null || r.toContent !== null || (r.href !== null && this.hrefDoc(r.href) !== doc) || !this.holds(r.conds, id)) continue
      const nodes = this.select(r.content, doc)
      if (this.trace !== undefined) { const t = this.traceOf(id); if (nodes.length === 0) t.emptyContent++; else t.applied++ }
      for (const n of nodes) {
        if (n.type === 'xattr') continue
        if (r.op === 'drop' || (r.op === 'replace' && r.inline === null)) {
          // A content-side replace with nothing to put in place removes what it matches.
          if (r.contentChildren && 'children' in n) for (const ch of n.children) b.drop.add(ch)
          else b.drop.add(n)
        } else if (r.op === 'strip') {
          if (r.contentChildren && 'children' in n) for (const ch of n.children) b.strip.add(ch)
          else b.strip.add(n)
        } else if (r.op === 'dropattrs' && r.attributes !== null) b.dropAttrs.set(n, [...(b.dropAttrs.get(n) ?? []), ...r.attributes])
        else if (r.inline !== null) { places.push([n, r]); if (r.xsl !== null) xsl = true }
      }
    }
    if (xsl) {
      // An xsl:apply-templates in a content-side rule copies with the content-side rules applied, which are being
      // computed: it sees every rule except the XSLT ones' own markup.
      const pre = b.copy()
      for (const [n, r] of places) if (r.xsl === null) pre.place(n, r.op, r.contentChildren, this.inlineHtml(r, n))
      this.mods.set(doc, pre.finish())
    }
    // A content-side rule is a template matching the node: its XSLT runs with that node as the context.
    for (const [n, r] of places) b.place(n, r.op, r.contentChildren, this.inlineHtml(r, n))
    m = b.finish()
    this.mods.set(doc, m)
    return m
  }

  /**
   * Diazo 2's `*-content` rules run before everything else and the theme rules see their result, so they produce a
   * new content page: the copies are written into the page's HTML, which is parsed again. Null when none applied.
   */
  movedContent (): string | null {
    const b = new ModsBuilder()
    let any = false
    for (const id of this.c.moveRules) {
      const r = this.c.rules[id]
      if (!this.holds(r.conds, r.id)) continue
      let html: string
      if (r.inline !== null) html = r.xsl !== null ? '' : this.inlineHtml(r)
      else {
        const found = this.contentNodes(r)
        if (found === null || found.nodes.length === 0) { this.count(r, true); continue }
        html = this.nodesHtml(found.doc, found.nodes, null)
      }
      const targets = this.select(r.toContent as Sel, this.doc)
      this.count(r, targets.length === 0)
      // In Diazo a *-content rule is a template matching its target: inline XSLT runs with the target as context.
      for (const n of targets) if (n.type !== 'xattr') { b.place(n, r.op, r.toContentChildren, r.xsl !== null ? this.inlineHtml(r, n) : html); any = true }
    }
    if (!any) return null
    return serializeNodes(this.doc.children, b.finish(), this.doc instanceof SourceDocument ? this.doc.source : undefined)
  }

  /** A rule's inline markup with its `<include>`s filled from the content, copied untouched (as xsl:copy-of would). */
  inlineHtml (r: Rule, node: XNode = this.doc, sink?: AttrSink): string {
    if (r.xsl !== null) return runTemplate(r.xsl, node, this.xsl(r), sink)
    const html = r.inline as string
    if (r.inlineIncludes.length === 0) return html
    return html.replace(/\u0000(\d+)\u0000/g, (_m, i: string) => {
      const inc = r.inlineIncludes[Number(i)]
      if (!this.holds(inc.conds)) return ''
      let nodes = this.select(inc.sel, this.doc)
      if (inc.children) nodes = nodes.flatMap(n => n.type !== 'xattr' && 'children' in n ? n.children : [])
      return this.nodesHtml(this.doc, nodes, null)
    })
  }

  /** The environment one rule's inline XSLT runs in (one per run: a rule's body may run another rule's). */
  xsl (r: Rule): XslEnv {
    return {
      vars: this.vars,
      select: (sel, doc) => this.select(sel, doc),
      copy: (nodes, rules, sink) => this.nodesHtml(this.doc, nodes, rules ? this.modsFor(this.doc) : null, sink),
      include: (i, sink) => {
        const inc = r.inlineIncludes[i]
        if (!this.holds(inc.conds)) return ''
        let nodes = this.select(inc.sel, this.doc)
        if (inc.children) nodes = nodes.flatMap(n => n.type !== 'xattr' && 'children' in n ? n.children : [])
        return this.nodesHtml(this.doc, nodes, null, sink)
      }
    }
  }

  /** Serialises content nodes, copying verbatim source where it can; attribute nodes go to `sink` (see below). */
  nodesHtml (doc: Document, nodes: readonly XNode[], mods: ContentMods | null, sink?: AttrSink): string {
    const src = doc instanceof SourceDocument ? doc.source : undefined
    let out = ''
    let batch: AnyNode[] = []
    for (const n of nodes) {
      if (n.type !== 'xattr') { batch.push(n); continue }
      out += serializeNodes(batch, mods, src)
      batch = []
      // As xsl:copy-of does: an attribute node sets an attribute on the element being written while that element
      // has no children yet, and is lost anywhere else.
      if (sink !== undefined && sink.open && out === '') sink.attrs.set(n.name, n.value)
    }
    out += serializeNodes(batch, mods, src)
    if (sink !== undefined && out !== '') sink.open = false
    return out
  }

  contentNodes (r: Rule): { doc: Document, nodes: XNode[] } | null {
    const doc = this.docOf(r)
    if (doc === null) return null
    let nodes: XNode[]
    if (r.content !== null) nodes = this.select(r.content, doc)
    else {
      const body = this.select(bodySel, doc).find((n): n is Element => n.type === 'tag')
      nodes = body !== undefined ? [...body.children] : [...doc.children]
    }
    if (r.contentChildren) nodes = nodes.flatMap(n => n.type !== 'xattr' && 'children' in n ? n.children : [])
    return { doc, nodes }
  }

  /** The markup a replace/before/after rule contributes. */
  ruleHtml (r: Rule, sink?: AttrSink): string {
    if (r.op === 'drop') return ''
    if (r.inline !== null || r.include !== null) {
      this.count(r, false)
      const html = r.inline !== null ? this.inlineHtml(r, this.doc, sink) : this.includeHtml(r, r.include as string)
      if (sink !== undefined && html !== '') sink.open = false
      return html
    }
    const found = this.contentNodes(r)
    if (found === null || found.nodes.length === 0) { this.count(r, true); return '' }
    this.count(r, false)
    return this.nodesHtml(found.doc, found.nodes, r.method === 'raw' ? null : this.modsFor(found.doc), sink)
  }

  includeHtml (r: Rule, include: string): string {
    if (r.method === 'esi') return `<esi:include src="${escapeAttr(include)}"></esi:include>`
    // Diazo's exact directive text, two spaces included.
    const virtual = `virtual="${include.replace(/--/g, '%2D%2D')}"`
    return r.method === 'ssiwait' ? `<!--#include  ${virtual} wait="yes"-->` : `<!--#include  ${virtual}-->`
  }

  count (r: Rule, empty: boolean): void {
    if (this.trace === undefined) return
    const t = this.traceOf(r.id)
    if (empty) t.emptyContent++; else t.applied++
  }

  /** First rule of an if / else-if / else chain whose conditions hold. */
  pick (ids: readonly number[]): Rule | null {
    for (let i = 0; i < ids.length; i++) {
      const r = this.c.rules[ids[i]]
      if (this.holds(r.conds, r.id)) {
        if (this.trace !== undefined) for (let j = i + 1; j < ids.length; j++) this.traceOf(ids[j]).superseded++
        return r
      }
    }
    return null
  }

  all (ids: readonly number[], sink?: AttrSink): string {
    let out = ''
    for (const id of ids) { const r = this.c.rules[id]; if (this.holds(r.conds, id)) out += this.ruleHtml(r, sink) }
    return out
  }

  any (ids: readonly number[]): boolean {
    for (const id of ids) {
      if (id < 0) return true
      const r = this.c.rules[id]
      if (this.holds(r.conds, id)) { if (this.trace !== undefined) this.traceOf(id).applied++; return true }
    }
    return false
  }

  /**
   * Attribute rules as Diazo applies them: every drop first, then merge and copy in file order, each computed
   * from the theme's attributes after the drops, so the last rule to set an attribute wins. Copy and merge read
   * every matched content element (a later element's value wins a copy; a merge joins them all).
   */
  attrs (s: NodeSlot): string { return attrsHtml(Object.fromEntries(this.attrMap(s)), s.name) }

  attrMap (s: NodeSlot): Map<string, string> {
    const a = new Map<string, string>(s.attrs)
    for (const [id, name] of s.dropAttr) if (this.holds(this.c.rules[id].conds, id)) { a.delete(name); this.count(this.c.rules[id], false) }
    const live: Rule[] = []
    for (const id of s.attrRules) {
      const r = this.c.rules[id]
      if (!this.holds(r.conds, id)) continue
      if (r.op !== 'dropattrs') { live.push(r); continue }
      const names = r.attributes ?? []
      if (names[0] === '*') a.clear(); else for (const n of names) a.delete(n)
      this.count(r, false)
    }
    if (live.length === 0) return a
    const base = new Map(a)
    for (const r of live) {
      const found = this.contentNodes(r)
      const els = found === null ? [] : found.nodes.filter((n): n is Element => n.type === 'tag' || n.type === 'script' || n.type === 'style')
      if (els.length === 0) { this.count(r, true); continue }
      this.count(r, false)
      const names = r.attributes ?? []
      const all = names[0] === '*'
      if (r.op === 'mergeattrs') {
        const list = all ? [...new Set(els.flatMap(el => Object.keys(el.attribs)))] : names
        for (const n of list) {
          const parts: string[] = []
          const own = base.get(n)
          if (own !== undefined && own !== '') parts.push(own)
          for (const el of els) { const v = el.attribs[n]; if (v !== undefined && v !== '') parts.push(v) }
          // Nothing to join onto a missing attribute leaves it missing rather than creating an empty one.
          if (parts.length > 0) a.set(n, parts.join(r.separator)); else if (own !== undefined) a.set(n, own)
        }
        continue
      }
      // `*` copies every attribute of the content over the theme's, keeping the theme's others (as Diazo does,
      // whatever its docs say about dropping them).
      for (const el of els) for (const n of all ? Object.keys(el.attribs) : names) { const v = el.attribs[n]; if (v !== undefined) a.set(n, v) }
    }
    return a
  }

  render (segs: readonly Seg[]): string {
    let out = ''
    for (const s of segs) out += typeof s === 'string' ? s : this.slot(s)
    return out
  }

  slot (s: NodeSlot): string {
    let out = this.all(s.before)
    if (s.raw !== undefined) {
      // A theme text or comment node.
      if (!this.any(s.drop)) { const rep = this.pick(s.replace); out += rep !== null ? this.ruleHtml(rep) : s.raw }
      return out + this.all(s.after)
    }
    if (!this.any(s.drop)) {
      const rep = this.pick(s.replace)
      if (rep !== null) out += this.ruleHtml(rep)
      else {
        const stripped = this.any(s.strip)
        const plain = s.attrRules.length === 0 && s.dropAttr.length === 0
        if (s.isVoid || (s.childBefore.length === 0 && s.childReplace.length === 0)) {
          if (!stripped) out += `<${s.name}${plain ? attrsHtml(Object.fromEntries(s.attrs), s.name) : this.attrs(s)}>${s.lead}`
          if (!s.isVoid) {
            out += this.render(s.body) + this.all(s.childAfter)
            if (!stripped) out += `</${s.name}>`
          }
        } else {
          // Children rules may copy attribute nodes onto the element, so they run before its start tag is written.
          const sink: AttrSink | undefined = stripped ? undefined : { attrs: new Map(), open: s.lead === '' }
          let inner = this.all(s.childBefore, sink)
          const kids = this.pick(s.childReplace)
          if (kids !== null) inner += this.ruleHtml(kids, sink)
          else { const b = this.render(s.body); if (sink !== undefined && b !== '') sink.open = false; inner += b }
          inner += this.all(s.childAfter, sink)
          if (stripped) out += inner
          else {
            let attrs: string
            if (sink === undefined || sink.attrs.size === 0) attrs = plain ? attrsHtml(Object.fromEntries(s.attrs), s.name) : this.attrs(s)
            else {
              const merged = plain ? new Map(s.attrs) : this.attrMap(s)
              for (const [k, v] of sink.attrs) merged.set(k, v)
              attrs = attrsHtml(Object.fromEntries(merged), s.name)
            }
            out += `<${s.name}${attrs}>${s.lead}${inner}</${s.name}>`
          }
        }
      }
    }
    return out + this.all(s.after)
  }
}

/** Which theme applies: null for notheme, or the index into `compiled.themes`. */
function chooseTheme (run: Run): number | null {
  const c = run.c
  for (const n of c.nothemes) if (run.holds(n.conds)) { if (run.trace !== undefined) run.trace.notheme = c.nothemes.indexOf(n); return null }
  // Diazo tries the conditional themes in file order; an unconditional theme is the fallback wherever it stands.
  let fallback: number | null = null
  for (let i = 0; i < c.themes.length; i++) {
    if (c.themes[i].conds.length === 0) { fallback ??= i; continue }
    if (run.holds(c.themes[i].conds)) return i
  }
  return fallback
}

/**
 * Themes one content page. Never throws for malformed HTML; selector errors
 * in content-side XPath would be programming errors and do propagate.
 */
export function transformCompiled (compiled: Compiled, contentHtml: string, ctx: TransformContext): TransformOutcome {
  let run = new Run(compiled, parseHtml(contentHtml), ctx)
  const moved = compiled.moveRules.length === 0 ? null : run.movedContent()
  if (moved !== null) run = new Run(compiled, parseHtml(moved), ctx)
  const i = chooseTheme(run)
  if (run.trace !== undefined) run.trace.theme = i ?? -1
  if (i === null) {
    // Diazo still applies the content-side rules to an unthemed page: serve it with them applied.
    const mods = compiled.contentRules.length === 0 ? noMods : run.modsFor(run.doc)
    if (mods === noMods && moved === null) return { kind: 'notheme' }
    return { kind: 'html', html: serializeNodes(run.doc.children, mods, run.doc instanceof SourceDocument ? run.doc.source : undefined), theme: -1 }
  }
  const theme: CompiledTheme = compiled.themes[i]
  if (theme.segs === null) return { kind: 'unavailable', reason: theme.error }
  return { kind: 'html', html: run.render(theme.segs), theme: i }
}
