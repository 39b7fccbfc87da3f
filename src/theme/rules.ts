/**
 * Diazo rules files → a flat, plain-data rule list. Nested `<rules>`
 * conditions are folded into each rule; `xi:include` is expanded; every
 * rule keeps a `where` string (`file:line: <tag ...>`) for errors and traces.
 */
import { liveryError } from '../errors.ts'
import { parseXml, XmlSyntaxError, type XmlChild, type XmlElement } from './xml.ts'
import { makeSelector, type Sel } from './select.ts'
import { matchAnywhere, parseXPath, xpathVariables, type XExpr } from './xpath-parse.ts'
import { evaluate, type XValue } from './xpath.ts'
import { Document } from 'domhandler'
import { escapeAttr, escapeText, voidElements } from './html.ts'
import { cssToXPath } from './css-xpath.ts'
import { foldStatic, isAvt, parseAvt, type Avt, type Tpl } from './xslt.ts'
import { builtinVariables, type Cond, type DocVar, type InlineInclude, type Method, type NothemeDef, type ParseRulesOptions, type ReadText, type Rule, type RuleOp, type RuleSet, type ThemeDef } from './rule-set.ts'
import { displayName } from './rule-files.ts'

export const DIAZO_NS = 'http://namespaces.plone.org/diazo'
export const CSS_NS = 'http://namespaces.plone.org/diazo/css'
const XDV_NS = 'http://namespaces.plone.org/xdv'
const XDV_CSS_NS = 'http://namespaces.plone.org/xdv+css'
/** The CSS namespace of Diazo before 1.0b1 (still in older rule files). */
const DIAZO_CSS_OLD_NS = 'http://namespaces.plone.org/diazo+css'
const DELIVERANCE_NS = 'http://openplans.org/deliverance'
const XI_NS = 'http://www.w3.org/2001/XInclude'
const XSL_NS = 'http://www.w3.org/1999/XSL/Transform'
const XHTML_NS = 'http://www.w3.org/1999/xhtml'
const ruleNamespaces = new Set([DIAZO_NS, XDV_NS, DELIVERANCE_NS])
const cssNamespaces = new Set([CSS_NS, XDV_CSS_NS, DIAZO_CSS_OLD_NS])

export type { Cond, DocVar, InlineInclude, Method, NothemeDef, ParseRulesOptions, ReadText, Rule, RuleOp, RuleSet, ThemeDef } from './rule-set.ts'
export { builtinVariables } from './rule-set.ts'
export { displayName, toUrl } from './rule-files.ts'

const ruleAttrs = new Set(['theme', 'content', 'theme-children', 'content-children', 'to-content', 'to-content-children', 'if-content', 'if-not-content',
  'if-path', 'if-not-path', 'if', 'if-not', 'attributes', 'separator', 'href', 'method', 'merge',
  // Older spellings: XDV's raw="true" (method="raw"), and Deliverance's error-handling switches, which do not change the output.
  'raw', 'nocontent', 'notheme', 'manytheme', 'manycontent'])
const cssAttrs = new Set(['theme', 'content', 'theme-children', 'content-children', 'to-content', 'to-content-children', 'if-content', 'if-not-content'])

class RulesParser {
  readonly rules: Rule[] = []
  readonly themes: ThemeDef[] = []
  readonly nothemes: NothemeDef[] = []
  readonly files: Array<{ url: string, text: string }> = []
  readonly read: ReadText
  readonly vars: Set<string>
  readonly themeBase: string | undefined
  readonly constants: Record<string, string> = {}
  /** Root `<rules>` elements, whose xsl:variable children are declared before anything else is read. */
  readonly roots = new Set<XmlElement>()
  readonly paramDefaults: Record<string, string> = {}
  readonly docVars: DocVar[] = []
  constructor (read: ReadText, opts: ParseRulesOptions) {
    this.read = read
    this.vars = new Set([...builtinVariables, ...(opts.params ?? [])])
    this.themeBase = opts.themeBase
  }

  async file (url: string, inherited: readonly Cond[], depth: number, from?: string): Promise<void> {
    if (depth > 16) throw liveryError('LIVERY_ERR_RULES', `${from ?? displayName(url)}: xi:include nests deeper than 16 files (a loop?)`)
    let text: string
    try { text = await this.read(url) } catch (err) {
      throw liveryError('LIVERY_ERR_RULES', `${from ?? displayName(url)}: cannot read rules file ${displayName(url)}: ${(err as Error).message}`)
    }
    this.files.push({ url, text })
    let root: XmlElement
    try { root = parseXml(text) } catch (err) {
      const line = err instanceof XmlSyntaxError ? err.line : 1
      throw liveryError('LIVERY_ERR_RULES', `${displayName(url)}:${line}: malformed XML: ${(err as Error).message}`)
    }
    if (!ruleNamespaces.has(root.ns) || root.local !== 'rules') {
      throw liveryError('LIVERY_ERR_RULES', `${displayName(url)}:${root.line}: <${root.qname}>: the root element must be <rules> in the ${DIAZO_NS} namespace`)
    }
    // XSLT lets a top-level variable be used before its declaration: declare them all first.
    this.roots.add(root)
    for (const child of root.children) if (child.kind === 'element' && child.ns === XSL_NS) this.xsl(child, url, true)
    await this.container(root, url, inherited, depth)
  }

  /**
   * The XSLT that plone.app.theming rule files commonly carry: `xsl:variable` / `xsl:param` with a literal value
   * become constant parameters; `xsl:output` and `xsl:strip-space` only steer XSLT serialisation and are ignored.
   * Everything else is a program Livery does not run.
   */
  xsl (el: XmlElement, url: string, topLevel: boolean): void {
    switch (el.local) {
      case 'output': case 'strip-space': case 'preserve-space': return
      case 'variable': case 'param': {
        if (!topLevel) return
        const name = el.attrs.find(a => a.ns === '' && a.local === 'name')?.value
        if (name === undefined || !/^[A-Za-z_][\w.-]*$/.test(name)) this.fail(el, url, `<xsl:${el.local}> needs a name`)
        const select = el.attrs.find(a => a.ns === '' && a.local === 'select')?.value
        const cssSelect = el.attrs.find(a => cssNamespaces.has(a.ns) && a.local === 'select')?.value
        let value: string
        if (cssSelect !== undefined || select !== undefined) {
          let sel: Sel
          try { sel = cssSelect !== undefined ? makeSelector('css', cssSelect) : makeSelector('xpath', select as string) } catch (err) { this.fail(el, url, (err as Error).message) }
          const known = (v: string): boolean => Object.hasOwn(this.constants, v) || Object.hasOwn(this.paramDefaults, v)
          if (sel.kind === 'css' || !constant(sel.ast, known) || this.docVars.length > 0) {
            // Computed from the content: evaluated once per page, before any rule reads it.
            for (const v of sel.kind === 'xpath' ? xpathVariables(sel.ast) : []) {
              if (!this.vars.has(v)) this.fail(el, url, `uses undeclared variable $${v}`)
            }
            this.docVars.push({ name, sel, param: el.local === 'param' })
            this.vars.add(name)
            return
          }
          value = asString(evaluate(sel.ast, { node: new Document([]), pos: 1, size: 1, vars: { ...this.paramDefaults, ...this.constants } }))
        } else {
          if (el.children.some(c => c.kind === 'element')) this.fail(el, url, 'a variable\'s content must be text (or give select= / css:select=)')
          value = el.children.map(c => c.kind === 'text' ? c.text : '').join('')
        }
        ;(el.local === 'variable' ? this.constants : this.paramDefaults)[name] = value
        this.vars.add(name)
        return
      }
      default:
        this.fail(el, url, `<xsl:${el.local}> is XSLT Livery does not run: at the top level of a rules file only xsl:variable, ` +
          'xsl:param, xsl:output and xsl:strip-space are accepted (see docs/rules.md)')
    }
  }

  where (el: XmlElement, url: string): string {
    const attrs = el.attrs.map(a => ` ${a.qname}="${a.value}"`).join('')
    return `${displayName(url)}:${el.line}: <${el.qname}${attrs}>`
  }

  fail (el: XmlElement, url: string, msg: string): never {
    throw liveryError('LIVERY_ERR_RULES', `${this.where(el, url)}: ${msg}`)
  }

  async container (el: XmlElement, url: string, inherited: readonly Cond[], depth: number): Promise<void> {
    const conds = [...inherited, ...this.attrsOf(el, url, null).conds]
    for (const child of el.children) {
      if (child.kind !== 'element') {
        if (child.kind === 'text' && child.text.trim() !== '') this.fail(el, url, `unexpected text "${child.text.trim().slice(0, 40)}" between rules`)
        continue
      }
      if (child.ns === XI_NS && child.local === 'include') {
        const href = child.attrs.find(a => a.local === 'href' && a.ns === '')?.value
        if (href === undefined || href === '') this.fail(child, url, 'xi:include needs an href')
        await this.file(new URL(href, url).href, conds, depth + 1, this.where(child, url))
        continue
      }
      if (child.ns === XSL_NS) {
        if ((child.local === 'variable' || child.local === 'param') && this.roots.has(el)) continue
        this.xsl(child, url, false)
        if (child.local === 'variable' || child.local === 'param') this.fail(child, url, `<xsl:${child.local}> is only supported at the top level of the rules file`)
        continue
      }
      if (!ruleNamespaces.has(child.ns)) this.fail(child, url, `unknown element; rules must be in the ${DIAZO_NS} namespace`)
      if (child.local === 'rules') await this.container(child, url, conds, depth)
      else this.rule(child, url, conds)
    }
  }

  attrsOf (el: XmlElement, url: string, self: { content: Sel | null } | null, skipConds = false): { a: Map<string, string>, css: Map<string, string>, conds: Cond[] } {
    const a = new Map<string, string>()
    const css = new Map<string, string>()
    for (const at of el.attrs) {
      if (at.ns === '') {
        if (!ruleAttrs.has(at.local)) this.fail(el, url, `unknown attribute "${at.qname}"`)
        a.set(at.local, at.value)
      } else if (cssNamespaces.has(at.ns)) {
        if (!cssAttrs.has(at.local)) this.fail(el, url, `unknown attribute "${at.qname}"`)
        css.set(at.local, at.value)
      }
    }
    const conds: Cond[] = []
    if (skipConds) return { a, css, conds }
    const sel = (name: string): Sel | null => this.selector(el, url, a, css, name)
    for (const [name, neg] of [['if-content', false], ['if-not-content', true]] as const) {
      const raw = css.get(name) ?? a.get(name)
      if (raw === undefined) continue
      if (raw.trim() === '') {
        // An empty if-content means "if this rule's own content selector matches".
        if (self?.content == null) this.fail(el, url, `an empty ${name} needs a content selector on the same rule`)
        conds.push({ t: 'content', sel: self.content, neg, src: `${name}=""` })
      } else {
        const s = sel(name) as Sel
        conds.push({ t: 'content', sel: s, neg, src: `${name}="${s.src}"` })
      }
    }
    for (const [name, neg] of [['if-path', false], ['if-not-path', true]] as const) {
      const raw = a.get(name)
      if (raw === undefined) continue
      const pats = raw.split(/\s+/).filter(p => p !== '')
      conds.push({ t: 'path', pats, neg, src: `${name}="${raw}"` })
    }
    for (const [name, neg] of [['if', false], ['if-not', true]] as const) {
      const raw = a.get(name)
      if (raw === undefined) continue
      let ast: XExpr
      try { ast = parseXPath(raw) } catch (err) { this.fail(el, url, `unsupported expression "${raw}": ${(err as Error).message}`) }
      for (const v of xpathVariables(ast)) if (!this.vars.has(v)) this.fail(el, url, `${name} uses undeclared variable $${v} (declare it as a theme parameter)`)
      conds.push({ t: 'expr', ast, neg, src: `${name}="${raw}"` })
    }
    return { a, css, conds }
  }

  selector (el: XmlElement, url: string, a: Map<string, string>, css: Map<string, string>, name: string): Sel | null {
    const c = css.get(name)
    const x = a.get(name)
    if (c !== undefined && x !== undefined) this.fail(el, url, `both ${name} and css:${name} are given; use one`)
    if (c === undefined && x === undefined) return null
    try { return c !== undefined ? makeSelector('css', c) : makeSelector('xpath', x as string) } catch (err) {
      this.fail(el, url, (err as Error).message)
    }
  }

  rule (el: XmlElement, url: string, inherited: readonly Cond[]): void {
    const where = this.where(el, url)
    const probe = this.attrsOf(el, url, null, true)
    const get = (n: string): Sel | null => this.selector(el, url, probe.a, probe.css, n)
    const themeSel = get('theme'); const themeKids = get('theme-children')
    const contentSel = get('content'); const contentKids = get('content-children')
    if (themeSel !== null && themeKids !== null) this.fail(el, url, 'give theme or theme-children, not both')
    if (contentSel !== null && contentKids !== null) this.fail(el, url, 'give content or content-children, not both')
    const theme = themeSel ?? themeKids
    const toSel = get('to-content'); const toKids = get('to-content-children')
    if (toSel !== null && toKids !== null) this.fail(el, url, 'give to-content or to-content-children, not both')
    let toContent = toSel ?? toKids
    const toContentRule = /^(replace|before|after|prepend|append)-content$|^insert$/.test(el.local)
    if (toContent !== null && !toContentRule) this.fail(el, url, 'to-content is only allowed on replace-content, before-content, after-content, prepend-content and append-content')
    let content = contentSel ?? contentKids
    // Content-side rules are match patterns in Diazo: a relative XPath matches anywhere.
    if (theme === null && !toContentRule && content !== null && content.kind === 'xpath') content = { ...content, ast: matchAnywhere(content.ast) }
    if (toContent !== null && toContent.kind === 'xpath') toContent = { ...toContent, ast: matchAnywhere(toContent.ast) }
    const conds = [...inherited, ...this.attrsOf(el, url, { content }).conds]
    // Deliverance skips a rule whose content is missing: its rules carry an implicit if-content="".
    if (el.ns === DELIVERANCE_NS && content !== null && theme !== null && !probe.a.has('if-content') && !probe.css.has('if-content') &&
      !probe.a.has('if-not-content') && !probe.css.has('if-not-content')) {
      conds.push({ t: 'content', sel: content, neg: false, src: 'if-content="" (implicit in the Deliverance namespace)' })
    }
    const local = el.local
    if (local === 'theme' || local === 'notheme') {
      if (local === 'notheme') { this.nothemes.push({ conds, where }); return }
      const href = probe.a.get('href')
      if (href === undefined || href === '') this.fail(el, url, '<theme> needs an href')
      this.themes.push({ href: new URL(href, this.themeBase ?? url).href, conds, where })
      return
    }
    const attrList = probe.a.get('attributes')
    const attributes = attrList === undefined ? null : attrList.split(/\s+/).filter(s => s !== '')
    const legacyRaw = probe.a.get('raw')
    const methodRaw = probe.a.get('method') ?? (legacyRaw !== undefined && /^(true|1|yes|raw)$/i.test(legacyRaw.trim()) ? 'raw' : 'document')
    if (!['document', 'raw', 'ssi', 'ssiwait', 'esi'].includes(methodRaw)) this.fail(el, url, `unsupported method "${methodRaw}" (use document, raw, ssi, ssiwait or esi)`)
    const hrefRaw = probe.a.get('href')
    const includes = methodRaw === 'ssi' || methodRaw === 'ssiwait' || methodRaw === 'esi'
    if (includes && (hrefRaw === undefined || hrefRaw === '')) this.fail(el, url, `method="${methodRaw}" needs an href`)
    const inlineIncludes: InlineInclude[] = []
    const xsl = usesXslt(el) ? this.template(el.children, url, inlineIncludes) : null
    const inline = xsl !== null ? (xsl.length > 0 ? '' : null) : this.inline(el, url, inlineIncludes)
    const base = {
      id: this.rules.length, theme, themeChildren: themeKids !== null, content, contentChildren: contentKids !== null, toContent, toContentChildren: toKids !== null,
      attributes, separator: probe.a.get('separator') ?? ' ', conds, where, inline, inlineIncludes, xsl: xsl !== null && xsl.length > 0 ? xsl : null,
      // An include directive is resolved by the edge against the page's URL: it keeps the href as written.
      href: hrefRaw === undefined || hrefRaw === '' ? null : includes || (hrefRaw.startsWith('/') && !hrefRaw.startsWith('//')) ? hrefRaw : new URL(hrefRaw, url).href,
      method: methodRaw as Method,
      include: includes ? this.includeUrl(el, url, hrefRaw as string, contentSel, contentKids) : null
    }
    let op: RuleOp
    switch (local) {
      case 'replace': case 'before': case 'after': case 'prepend': case 'append':
        op = local === 'prepend' ? 'before' : local === 'append' ? 'after' : local
        if (theme === null) {
          // Diazo's "modifying the content on the fly": inline markup replaces, or goes before or after, the content.
          if (content === null || local === 'prepend' || local === 'append') this.fail(el, url, 'needs a theme or theme-children selector')
          if (attributes !== null || base.href !== null) this.fail(el, url, 'a content-side rule takes no attributes or href')
          this.rules.push({ ...base, op })
          return
        }
        if (attributes !== null) {
          if (op !== 'replace') this.fail(el, url, 'attributes is only allowed on replace, copy, merge and drop')
          if (content === null) this.fail(el, url, 'copying attributes needs a content selector')
          op = 'copyattrs'
        } else if (content === null && inline === null && base.href === null) this.fail(el, url, 'needs a content selector, an href or inline markup')
        if (local === 'prepend' || local === 'append') base.themeChildren = true
        break
      case 'replace-content': case 'before-content': case 'after-content': case 'prepend-content': case 'append-content': case 'insert': {
        // Diazo 2: content (or inline markup) moves to another place in the content before the theme rules run.
        if (theme !== null) this.fail(el, url, 'a *-content rule takes no theme selector')
        if (toContent === null) this.fail(el, url, 'needs a to-content or to-content-children selector')
        if (content === null && inline === null) this.fail(el, url, 'needs a content selector or inline markup')
        if (attributes !== null || includes) this.fail(el, url, 'a *-content rule takes no attributes and no ssi/esi method')
        // <insert> is the early Diazo 2 name of append-content.
        const kind = local === 'insert' ? 'append' : local.slice(0, -'-content'.length)
        op = kind === 'prepend' ? 'before' : kind === 'append' ? 'after' : kind as RuleOp
        if (kind === 'prepend' || kind === 'append') base.toContentChildren = true
        break
      }
      case 'copy':
        if (theme === null || content === null) this.fail(el, url, 'needs theme and content selectors')
        // Without attributes, <copy> is XDV's "replace the theme node's children".
        if (attributes === null) { op = 'replace'; base.themeChildren = true } else op = 'copyattrs'
        break
      case 'merge':
        if (theme === null || content === null || attributes === null) this.fail(el, url, 'needs theme, content and attributes')
        op = 'mergeattrs'
        break
      case 'drop': case 'strip':
        if ((theme === null) === (content === null)) this.fail(el, url, 'needs exactly one of a theme or a content selector')
        if (inline !== null) this.fail(el, url, `<${local}> cannot carry inline markup`)
        op = local === 'drop' && attributes !== null ? 'dropattrs' : local
        if (local === 'strip' && attributes !== null) this.fail(el, url, 'attributes is only allowed on replace, copy, merge and drop')
        break
      default:
        this.fail(el, url, 'unknown rule element')
    }
    if (inline !== null && content !== null) this.fail(el, url, 'give a content selector or inline markup, not both')
    this.rules.push({ ...base, op })
  }

  /** Diazo's include URL: the href, and the content selector as `;filter_xpath=` for the server to apply. */
  includeUrl (el: XmlElement, url: string, href: string, content: Sel | null, children: Sel | null): string {
    const sel = content ?? children
    if (sel === null) return href
    let xpath: string
    try { xpath = sel.kind === 'xpath' ? sel.src : cssToXPath(sel.src) } catch (err) {
      this.fail(el, url, `the content selector cannot be sent as an XPath filter with the include (${(err as Error).message}); write it as XPath`)
    }
    if (children !== null) xpath = `${xpath}/node()`
    return `${href}${href.includes('?') ? '&' : '?'};filter_xpath=${xpath.replace(/ /g, '%20')}`
  }

  /** A selector attribute of an XSLT instruction: `name=` (XPath over the context node) or `css:name=`. */
  xslSel (el: XmlElement, url: string, name: string, fallback?: string): Sel {
    const css = el.attrs.find(a => cssNamespaces.has(a.ns) && a.local === name)?.value
    const xp = el.attrs.find(a => a.ns === '' && a.local === name)?.value ?? (css === undefined ? fallback : undefined)
    if (css !== undefined && xp !== undefined) this.fail(el, url, `both ${name} and css:${name} are given; use one`)
    if (css === undefined && xp === undefined) this.fail(el, url, `<xsl:${el.local}> needs ${name}= or css:${name}=`)
    let sel: Sel
    try { sel = css !== undefined ? makeSelector('css', css) : makeSelector('xpath', xp as string) } catch (err) { this.fail(el, url, (err as Error).message) }
    if (sel.kind === 'xpath') this.checkVars(el, url, xpathVariables(sel.ast))
    return sel
  }

  checkVars (el: XmlElement, url: string, vars: Iterable<string>): void {
    for (const v of vars) if (!this.vars.has(v)) this.fail(el, url, `uses undeclared variable $${v}`)
  }

  avt (el: XmlElement, url: string, src: string): Avt {
    let a: Avt
    try { a = parseAvt(src) } catch (err) { this.fail(el, url, (err as Error).message) }
    for (const p of a) if (typeof p !== 'string') this.checkVars(el, url, xpathVariables(p))
    return a
  }

  /** An inline body that uses XSLT, as a program (see xslt.ts). XSLT drops whitespace-only text from a stylesheet. */
  template (children: readonly XmlChild[], url: string, includes: InlineInclude[], mode: 'markup' | 'raw' | 'attr' = 'markup'): Tpl[] {
    const raw = mode === 'raw'
    const out: Tpl[] = []
    // Local variables are in scope for the siblings after them, and go out of scope with this body.
    const locals: string[] = []
    try { this.body(children, url, includes, raw, out, locals) } finally { for (const v of locals) this.vars.delete(v) }
    // An attribute's value is text: folding it into markup would lose it.
    return mode === 'attr' ? out : foldStatic(out)
  }

  body (children: readonly XmlChild[], url: string, includes: InlineInclude[], raw: boolean, out: Tpl[], locals: string[]): void {
    for (const c of children) {
      if (c.kind === 'text') { if (raw || c.text.trim() !== '') out.push({ k: 'text', text: c.text, raw }); continue }
      if (c.kind === 'comment') { out.push({ k: 'html', html: `<!--${c.text}-->` }); continue }
      if (c.ns === XSL_NS && c.local === 'variable') {
        const name = c.attrs.find(a => a.ns === '' && a.local === 'name')?.value
        if (name === undefined || !/^[A-Za-z_][\w.-]*$/.test(name)) this.fail(c, url, '<xsl:variable> needs a name')
        if (c.children.some(k => k.kind === 'element' || (k.kind === 'text' && k.text.trim() !== ''))) this.fail(c, url, 'a variable inside a rule needs select= or css:select= (no content)')
        out.push({ k: 'let', name, sel: this.xslSel(c, url, 'select') })
        if (!this.vars.has(name)) { this.vars.add(name); locals.push(name) }
        continue
      }
      if (c.ns === XSL_NS) { out.push(this.instruction(c, url, includes)); continue }
      if (c.local === 'include' && ruleNamespaces.has(c.ns)) {
        this.inlineInclude(c, url, includes)
        out.push({ k: 'include', i: includes.length - 1 })
        continue
      }
      if (c.ns !== '' && c.ns !== XHTML_NS && !ruleNamespaces.has(c.ns)) this.fail(c, url, `inline markup must be HTML, not the ${c.ns} namespace`)
      const name = c.local.toLowerCase()
      const attrs = c.attrs.filter(a => !cssNamespaces.has(a.ns)).map(a => [a.ns === '' ? a.local : a.qname, this.avt(c, url, a.value)] as const)
      const body = voidElements.has(name) ? [] : this.template(c.children, url, includes, name === 'script' || name === 'style' ? 'raw' : 'markup')
      out.push({ k: 'elem', name: [name], attrs, body })
    }
  }

  instruction (c: XmlElement, url: string, includes: InlineInclude[]): Tpl {
    const attr = (n: string): string | undefined => c.attrs.find(a => a.ns === '' && a.local === n)?.value
    const body = (): Tpl[] => this.template(c.children, url, includes)
    switch (c.local) {
      case 'copy-of': return { k: 'copy', sel: this.xslSel(c, url, 'select'), rules: false }
      case 'copy': return { k: 'shallow', body: body() }
      case 'apply-templates':
        if (attr('mode') !== undefined) this.fail(c, url, 'xsl:apply-templates with a mode needs xsl:template, which Livery does not run')
        if (c.children.some(k => k.kind === 'element')) this.fail(c, url, 'xsl:apply-templates takes no xsl:sort or xsl:with-param here')
        return { k: 'copy', sel: this.xslSel(c, url, 'select', 'node()'), rules: true }
      case 'value-of': return { k: 'value', sel: this.xslSel(c, url, 'select') }
      case 'if': return { k: 'choose', when: [{ test: this.xslSel(c, url, 'test'), body: body() }], otherwise: [] }
      case 'choose': {
        const when: Array<{ test: Sel, body: Tpl[] }> = []
        let otherwise: Tpl[] | null = null
        for (const k of c.children) {
          if (k.kind === 'text' && k.text.trim() === '') continue
          if (k.kind === 'comment') continue
          if (k.kind !== 'element' || k.ns !== XSL_NS || (k.local !== 'when' && k.local !== 'otherwise') || otherwise !== null) {
            this.fail(c, url, 'xsl:choose holds xsl:when elements and then at most one xsl:otherwise')
          }
          if (k.local === 'when') when.push({ test: this.xslSel(k, url, 'test'), body: this.template(k.children, url, includes) })
          else otherwise = this.template(k.children, url, includes)
        }
        if (when.length === 0) this.fail(c, url, 'xsl:choose needs at least one xsl:when')
        return { k: 'choose', when, otherwise: otherwise ?? [] }
      }
      case 'for-each':
        if (c.children.some(k => k.kind === 'element' && k.ns === XSL_NS && k.local === 'sort')) this.fail(c, url, 'xsl:sort is not supported')
        return { k: 'each', sel: this.xslSel(c, url, 'select'), body: body() }
      case 'attribute': case 'element': {
        const name = attr('name')
        if (name === undefined || name.trim() === '') this.fail(c, url, `<xsl:${c.local}> needs a name`)
        if (attr('namespace') !== undefined) this.fail(c, url, `<xsl:${c.local} namespace=> is not supported (the output is HTML)`)
        if (c.local === 'attribute') return { k: 'attr', name: this.avt(c, url, name), body: this.template(c.children, url, includes, 'attr') }
        return { k: 'elem', name: this.avt(c, url, name), attrs: [], body: body() }
      }
      case 'text': {
        if (c.children.some(k => k.kind === 'element')) this.fail(c, url, 'xsl:text holds text only')
        const txt = c.children.map(k => k.kind === 'text' ? k.text : '').join('')
        return { k: 'text', text: txt, raw: attr('disable-output-escaping') === 'yes' }
      }
      default:
        this.fail(c, url, `<xsl:${c.local}> is XSLT Livery does not run inside a rule: ${inlineXslNames}`)
    }
  }

  inlineInclude (c: XmlElement, url: string, includes: InlineInclude[]): void {
    // Diazo's inline <include>: a copy of content nodes at this point of the markup.
    const inc = this.attrsOf(c, url, null, true)
    const one = this.selector(c, url, inc.a, inc.css, 'content')
    const kids = this.selector(c, url, inc.a, inc.css, 'content-children')
    const sel = one ?? kids
    if (sel === null || (one !== null && kids !== null)) this.fail(c, url, '<include> needs one content or content-children selector')
    includes.push({ sel, children: kids !== null, conds: this.attrsOf(c, url, { content: sel }).conds })
  }

  inline (el: XmlElement, url: string, includes: InlineInclude[]): string | null {
    let html = ''
    let any = false
    const walk = (children: XmlChild[]): void => {
      for (const c of children) {
        if (c.kind === 'text') { if (c.text.trim() !== '') any = true; html += escapeText(c.text); continue }
        if (c.kind === 'comment') { html += `<!--${c.text}-->`; continue }
        any = true
        if (c.local === 'include' && ruleNamespaces.has(c.ns)) {
          html += `\u0000${includes.length}\u0000`
          this.inlineInclude(c, url, includes)
          continue
        }
        // Diazo files usually make its namespace the default, so inline markup lands in it: read it as HTML.
        if (c.ns !== '' && c.ns !== XHTML_NS && !ruleNamespaces.has(c.ns)) this.fail(c, url, `inline markup must be HTML, not the ${c.ns} namespace`)
        const name = c.local.toLowerCase()
        html += '<' + name
        for (const a of c.attrs) html += ` ${a.ns === '' ? a.local : a.qname}="${escapeAttr(a.value)}"`
        html += '>'
        if (voidElements.has(name)) continue
        if (name === 'script' || name === 'style') html += c.children.map(k => k.kind === 'text' ? k.text : '').join('')
        else walk(c.children)
        html += `</${name}>`
      }
    }
    walk(el.children)
    return any ? html : null
  }
}

const inlineXslNames = 'rule markup may use xsl:copy-of, copy, value-of, variable (with select=), apply-templates, if, choose, for-each, attribute, element and text'

/** Whether a rule body needs the XSLT evaluator: an xsl:* element or an attribute value template anywhere in it. */
function usesXslt (el: XmlElement): boolean {
  for (const c of el.children) {
    if (c.kind !== 'element') continue
    if (c.ns === XSL_NS) return true
    if (c.attrs.some(a => a.ns === '' && isAvt(a.value)) && !(c.local === 'include' && ruleNamespaces.has(c.ns))) return true
    if (usesXslt(c)) return true
  }
  return false
}

/** An expression whose value cannot depend on the document: literals, declared constants and functions of them. */
function constant (e: XExpr, known: (name: string) => boolean): boolean {
  switch (e.t) {
    case 'str': case 'num': return true
    case 'var': return known(e.name)
    case 'path': return false
    case 'fn':
      if (['last', 'position', 'count', 'local-name', 'name', 'sum'].includes(e.name) || e.args.length === 0 && !['true', 'false'].includes(e.name)) return false
      return e.args.every(a => constant(a, known))
    case 'neg': return constant(e.a, known)
    default: return constant(e.a, known) && constant(e.b, known)
  }
}

/** A constant as a parameter string; false becomes '' so that it stays false in a condition. */
function asString (v: XValue): string {
  if (typeof v === 'boolean') return v ? 'true' : ''
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v)
  return typeof v === 'string' ? v : ''
}

/**
 * Loads and parses a rules file and its includes. Throws LIVERY_ERR_RULES
 * with `file:line: <rule>: problem` for anything it cannot honour.
 */
export async function parseRules (rulesUrl: string, read: ReadText, opts: ParseRulesOptions = {}): Promise<RuleSet> {
  const p = new RulesParser(read, opts)
  await p.file(rulesUrl, [], 0)
  return { rules: p.rules, themes: p.themes, nothemes: p.nothemes, files: p.files, constants: p.constants, paramDefaults: p.paramDefaults, docVars: p.docVars }
}
