/**
 * Theme + rules → compiled template. Theme-side selectors are resolved here,
 * once per theme version: every theme node a rule targets becomes a slot,
 * everything else becomes static HTML strings (URLs already absolutised).
 * The result is plain data, so it can be serialised for the worker threads
 * (once per version: src/server/shared-theme.ts).
 */
import type { AnyNode, Comment, Element, Text } from 'domhandler'
import { liveryError } from '../errors.ts'
import { attrsHtml, escapeText, rawText, voidElements } from './html.ts'
import { parseTheme } from './parse.ts'
import type { Cond, NothemeDef, Rule, RuleSet } from './rule-set.ts'
import { selectNodes } from './select.ts'
import type { XNode } from './xpath.ts'
import { rewriteAttr, rewriteConditionalComment, rewriteCss } from './urls.ts'

/** A theme element some rule targets; the rule lists hold indices into `Compiled.rules`, in file order. */
export interface NodeSlot {
  readonly k: 'slot'
  readonly name: string
  readonly attrs: ReadonlyArray<readonly [string, string]>
  /** Markup emitted right after the start tag (the UTF-8 meta in `<head>`). */
  readonly lead: string
  readonly isVoid: boolean
  readonly before: readonly number[]
  readonly drop: readonly number[]
  readonly replace: readonly number[]
  readonly strip: readonly number[]
  readonly attrRules: readonly number[]
  readonly childBefore: readonly number[]
  readonly childReplace: readonly number[]
  readonly childAfter: readonly number[]
  readonly after: readonly number[]
  readonly body: readonly Seg[]
  /** Attribute nodes a theme-side drop selected (`theme="//div/@title"`): [rule id, attribute name]. */
  readonly dropAttr: ReadonlyArray<readonly [number, string]>
  /** For a text or comment node: its markup. Only before, drop, replace and after apply to it. */
  readonly raw?: string
}
export type Seg = string | NodeSlot

export interface CompiledTheme {
  readonly href: string
  readonly conds: readonly Cond[]
  readonly where: string
  /** Null when the theme could not be loaded; `error` says why. */
  readonly segs: readonly Seg[] | null
  readonly error: string
  /** Rule id → number of theme nodes its theme selector matched, for traces. */
  readonly matches: readonly number[]
}

export interface Compiled {
  readonly format: 1
  readonly version: string
  readonly rules: readonly Rule[]
  readonly themes: readonly CompiledTheme[]
  readonly nothemes: readonly NothemeDef[]
  /** Content-side rules (drop, strip, modifications), applied to content as it is placed. */
  readonly contentRules: readonly number[]
  /** Diazo 2's `*-content` rules, applied to the content page before anything else. */
  readonly moveRules: readonly number[]
  /** Top-level `xsl:variable` values and `xsl:param` defaults of the rules (see RuleSet). */
  readonly constants: Readonly<Record<string, string>>
  readonly paramDefaults: Readonly<Record<string, string>>
  readonly docVars: RuleSet['docVars']
  /** Distinct rule hrefs (absolute, or root-relative to resolve against the content URL). */
  readonly hrefs: readonly string[]
}

export interface ThemeInput { readonly html: string, readonly error?: undefined }
export interface ThemeFailure { readonly html?: undefined, readonly error: string }

interface SlotLists {
  before: number[], drop: number[], replace: number[], strip: number[], attrRules: number[],
  childBefore: number[], childReplace: number[], childAfter: number[], after: number[], dropAttr: Array<[number, string]>
}

const utf8Meta = '<meta charset="utf-8">'
const maxThemeDepth = 2000

function isElement (n: AnyNode): n is Element { return n.type === 'tag' || n.type === 'script' || n.type === 'style' }

function isCharsetMeta (el: Element): boolean {
  return el.name === 'meta' && (el.attribs.charset !== undefined || (el.attribs['http-equiv'] ?? '').toLowerCase() === 'content-type')
}

function compileTheme (rs: RuleSet, html: string, prefix: string | undefined, where: string): { segs: Seg[], matches: number[] } {
  const doc = parseTheme(html)
  // Theme selectors may read the rules' constants; request parameters do not exist yet.
  const vars = { ...rs.paramDefaults, ...rs.constants }
  const slots = new Map<AnyNode, SlotLists>()
  const staticDrop = new Set<AnyNode>()
  const staticStrip = new Set<AnyNode>()
  const staticAttrDrop = new Map<Element, Set<string>>()
  const matches: number[] = []
  const slotOf = (n: AnyNode): SlotLists => {
    let s = slots.get(n)
    if (s === undefined) {
      s = { before: [], drop: [], replace: [], strip: [], attrRules: [], childBefore: [], childReplace: [], childAfter: [], after: [], dropAttr: [] }
      slots.set(n, s)
    }
    return s
  }
  for (const r of rs.rules) {
    if (r.theme === null) { matches.push(0); continue }
    let nodes: XNode[]
    try { nodes = selectNodes(r.theme, doc, vars) } catch (err) {
      throw liveryError('LIVERY_ERR_SELECTOR', `${r.where}: theme selector "${r.theme.src}" failed on ${where}: ${(err as Error).message}`)
    }
    matches.push(nodes.length)
    const unsupported = (what: string, can: string): never => {
      throw liveryError('LIVERY_ERR_SELECTOR', `${r.where}: theme selector "${r.theme?.src ?? ''}" selects ${what} in ${where}; ${can}`)
    }
    for (const n of nodes) {
      if (n.type === 'xattr') {
        // Dropping an attribute node is dropping the attribute; nothing else can target one.
        if (r.op !== 'drop' || r.themeChildren) unsupported(`the attribute @${n.name}`, 'only <drop> applies to theme attributes (use attributes= for copy and merge)')
        if (r.conds.length === 0) {
          let names = staticAttrDrop.get(n.parent)
          if (names === undefined) { names = new Set(); staticAttrDrop.set(n.parent, names) }
          names.add(n.name)
        } else slotOf(n.parent).dropAttr.push([r.id, n.name])
        continue
      }
      if (!isElement(n)) {
        if (n.type !== 'text' && n.type !== 'comment') unsupported(`a ${n.type} node`, 'rules apply to elements, text and comments')
        if (r.themeChildren || !(r.op === 'drop' || r.op === 'replace' || r.op === 'before' || r.op === 'after')) {
          unsupported(`a ${n.type} node`, 'only drop, replace, before and after apply to text and comments')
        }
      }
      if (r.op === 'strip' && r.themeChildren) {
        // strip theme-children strips each child element, keeping what is inside them.
        if (isElement(n)) for (const ch of n.children) if (isElement(ch)) { if (r.conds.length === 0) staticStrip.add(ch); else slotOf(ch).strip.push(r.id) }
        continue
      }
      if (r.conds.length === 0 && r.op === 'drop' && !r.themeChildren) { staticDrop.add(n); continue }
      if (r.conds.length === 0 && r.op === 'strip' && !r.themeChildren) { staticStrip.add(n); continue }
      const s = slotOf(n)
      const c = r.themeChildren
      switch (r.op) {
        case 'before': (c ? s.childBefore : s.before).push(r.id); break
        case 'after': (c ? s.childAfter : s.after).push(r.id); break
        case 'replace': (c ? s.childReplace : s.replace).push(r.id); break
        case 'drop': (c ? s.childReplace : s.drop).push(r.id); break
        case 'strip': s.strip.push(r.id); break
        default: s.attrRules.push(r.id)
      }
    }
  }
  // A node that is dropped unconditionally but also carries before/after rules keeps its slot: those still apply.
  for (const [el, s] of slots) if (staticDrop.has(el)) { staticDrop.delete(el); s.drop.push(-1) }
  // Diazo compiles the replace rules of one theme node into an xsl:choose with the conditional rules first:
  // a conditional rule wins when it holds, wherever it stands in the file, and an unconditional one is the otherwise.
  const conditionalFirst = (ids: number[]): void => {
    if (ids.length < 2) return
    // Diazo's compiler stops with "Multiple unconditional replace rules may not match a single theme node" (and the
    // same for theme-children copies): its xsl:choose has room for one otherwise. Fail the same way, naming both.
    const plain = ids.filter(id => rs.rules[id].conds.length === 0 && rs.rules[id].op === 'replace')
    if (plain.length > 1) {
      throw liveryError('LIVERY_ERR_RULES', `${rs.rules[plain[1]].where}: a second unconditional rule replaces the same node of ${where} as ` +
        `${rs.rules[plain[0]].where} (Diazo refuses this too); give one of them a condition, or merge them into one rule`)
    }
    const sorted = [...ids.filter(id => rs.rules[id].conds.length > 0), ...ids.filter(id => rs.rules[id].conds.length === 0)]
    ids.splice(0, ids.length, ...sorted)
  }
  for (const s of slots.values()) { conditionalFirst(s.replace); conditionalFirst(s.childReplace) }
  const hasHead = doc.children.some(function find (n: AnyNode): boolean {
    return isElement(n) && (n.name === 'head' || (n.name === 'html' && n.children.some(find)))
  })
  let metaDone = false
  const leadFor = (el: Element): string => {
    if (metaDone) return ''
    if (el.name === 'head' || (!hasHead && el.name === 'html')) { metaDone = true; return utf8Meta }
    return ''
  }

  const leafHtml = (n: Text | Comment): string => {
    if (n.type === 'comment') return `<!--${prefix !== undefined ? rewriteConditionalComment(n.data, prefix) : n.data}-->`
    const p = n.parent
    if (p !== null && isElement(p) && rawText.has(p.name)) return p.name === 'style' && prefix !== undefined ? rewriteCss(n.data, prefix) : n.data
    return escapeText(n.data)
  }

  const walk = (nodes: readonly AnyNode[], out: Seg[], depth: number): void => {
    if (depth > maxThemeDepth) throw new Error(`the theme nests deeper than ${maxThemeDepth} elements`)
    const emit = (s: string): void => {
      if (s === '') return
      if (typeof out[out.length - 1] === 'string') out[out.length - 1] += s; else out.push(s)
    }
    for (const n of nodes) {
      if (staticDrop.has(n)) continue
      switch (n.type) {
        case 'text': case 'comment': {
          const s = slots.get(n)
          const html = leafHtml(n)
          if (s === undefined) emit(html)
          else out.push({ k: 'slot', name: '', attrs: [], lead: '', isVoid: true, ...s, body: [], raw: html })
          break
        }
        case 'directive': if (/^!doctype/i.test(n.data)) emit(`<${n.data}>`); break
        case 'cdata': case 'root': walk(n.children, out, depth + 1); break
        default: {
          const el = n as Element
          if (isCharsetMeta(el)) continue
          const attrs: Array<[string, string]> = []
          const gone = staticAttrDrop.get(el)
          for (const k in el.attribs) if (gone === undefined || !gone.has(k)) attrs.push([k, prefix === undefined ? el.attribs[k] : rewriteAttr(k, el.attribs[k], prefix)])
          const isVoid = voidElements.has(el.name)
          const lead = leadFor(el)
          const s = slots.get(el)
          if (s === undefined) {
            if (!staticStrip.has(el)) emit(`<${el.name}${attrsHtml(Object.fromEntries(attrs), el.name)}>${lead}`)
            if (isVoid) continue
            walk(el.children, out, depth + 1)
            if (!staticStrip.has(el)) emit(`</${el.name}>`)
          } else {
            const body: Seg[] = []
            if (!isVoid) walk(el.children, body, depth + 1)
            const stripped = staticStrip.has(el)
            if (stripped) s.strip.push(-1)
            out.push({ k: 'slot', name: el.name, attrs, lead, isVoid, ...s, body })
          }
        }
      }
    }
  }
  const segs: Seg[] = []
  walk(doc.children, segs, 0)
  if (!metaDone) segs.unshift(utf8Meta)
  if (typeof segs[0] !== 'string' || !/^\s*<!doctype/i.test(segs[0])) segs.unshift('<!DOCTYPE html>\n')
  return { segs, matches }
}

/**
 * Compiles every theme of a rule set. `themes[i]` is the loaded HTML (or the
 * failure) of `rs.themes[i]`. Throws LIVERY_ERR_SELECTOR when a theme-side
 * selector cannot be evaluated.
 */
export function compile (rs: RuleSet, themes: ReadonlyArray<ThemeInput | ThemeFailure>, opts: { absolutePrefix?: string, version: string }): Compiled {
  const compiled: CompiledTheme[] = rs.themes.map((t, i) => {
    const input = themes[i]
    if (input === undefined || input.html === undefined) {
      return { href: t.href, conds: t.conds, where: t.where, segs: null, error: input?.error ?? 'not loaded', matches: [] }
    }
    const { segs, matches } = compileTheme(rs, input.html, opts.absolutePrefix, t.href)
    return { href: t.href, conds: t.conds, where: t.where, segs, error: '', matches }
  })
  const contentRules = rs.rules.filter(r => r.theme === null && r.toContent === null).map(r => r.id)
  const moveRules = rs.rules.filter(r => r.toContent !== null).map(r => r.id)
  const hrefs = [...new Set(rs.rules.filter(r => r.href !== null && r.include === null).map(r => r.href as string))]
  return { format: 1, version: opts.version, rules: rs.rules, themes: compiled, nothemes: rs.nothemes, contentRules, moveRules, hrefs, constants: rs.constants, paramDefaults: rs.paramDefaults, docVars: rs.docVars }
}
