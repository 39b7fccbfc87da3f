/**
 * A small namespace-aware XML reader for rule files, on htmlparser2's
 * xmlMode. It keeps each element's line so rule errors can be located.
 * Rule files are small and read once per load, so simplicity wins here.
 */
import { Parser } from 'htmlparser2'

export interface XmlAttr { readonly ns: string, readonly local: string, readonly qname: string, readonly value: string }
export interface XmlElement {
  readonly kind: 'element'
  readonly ns: string
  readonly local: string
  readonly qname: string
  readonly attrs: XmlAttr[]
  readonly children: XmlChild[]
  readonly line: number
  /** In-scope prefix → namespace bindings, for re-serialising inline markup. */
  readonly scope: ReadonlyMap<string, string>
}
export type XmlChild = XmlElement | { kind: 'text', text: string } | { kind: 'comment', text: string }

export const XML_NS = 'http://www.w3.org/XML/1998/namespace'

function lineStarts (text: string): number[] {
  const starts = [0]
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1)
  return starts
}

function lineAt (starts: number[], index: number): number {
  let lo = 0; let hi = starts.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (starts[mid] <= index) lo = mid; else hi = mid - 1
  }
  return lo + 1
}

/** Thrown for malformed XML; `line` lets the caller build a located message. */
export class XmlSyntaxError extends Error {
  readonly line: number
  constructor (message: string, line: number) { super(message); this.line = line }
}

const xmlEntities = new Set(['amp', 'lt', 'gt', 'quot', 'apos'])

/**
 * Expands entities declared in an internal DTD subset (`<!DOCTYPE rules [<!ENTITY nbsp "&#160;">]>`), as libxml2
 * does for Diazo, and rejects any other reference XML does not define: HTML's `&nbsp;` in a rules file is an error
 * in Diazo, not text. Comments and CDATA sections are left alone.
 */
function expandEntities (text: string, starts: number[]): string {
  const declared = new Map<string, string>()
  const dtd = /<!DOCTYPE[^[>]*\[([\s\S]*?)\]\s*>/i.exec(text)
  if (dtd !== null) {
    for (const m of dtd[1].matchAll(/<!ENTITY\s+([\w.-]+)\s+(?:"([^"]*)"|'([^']*)')\s*>/g)) declared.set(m[1], m[2] ?? m[3])
    // Keep the line count, so later errors still point at the right line.
    text = text.slice(0, dtd.index) + dtd[0].replace(/[^\n]/g, ' ') + text.slice(dtd.index + dtd[0].length)
  }
  return text.replace(/<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>|&([^;\s<&]*)(;?)/g, (m: string, name: string | undefined, semi: string, at: number) => {
    if (name === undefined) return m
    if (semi === ';' && (xmlEntities.has(name) || /^#(?:\d+|x[0-9a-f]+)$/i.test(name))) return m
    const value = semi === ';' ? declared.get(name) : undefined
    if (value !== undefined) return value
    const line = lineAt(starts, at)
    if (semi !== ';') throw new XmlSyntaxError('a bare "&" (write &amp;)', line)
    throw new XmlSyntaxError(`undeclared entity "&${name};": rules files are XML, where only &amp; &lt; &gt; &quot; &apos; and numeric references (&#160;) are defined`, line)
  })
}

/** Parses XML text into an element tree; throws XmlSyntaxError on mismatched or missing tags. */
export function parseXml (text: string): XmlElement {
  const starts = lineStarts(text)
  if (text.includes('&')) text = expandEntities(text, starts)
  const stack: Array<{ el: XmlElement, children: XmlChild[] }> = []
  let root: XmlElement | undefined
  let failure: XmlSyntaxError | undefined
  const parser: Parser = new Parser({
    onopentag (qname, attribs) {
      const line = lineAt(starts, parser.startIndex)
      const parentScope = stack.length > 0 ? stack[stack.length - 1].el.scope : new Map([['xml', XML_NS]])
      let scope = parentScope
      for (const name in attribs) {
        if (name === 'xmlns' || name.startsWith('xmlns:')) {
          if (scope === parentScope) scope = new Map(parentScope)
          ;(scope as Map<string, string>).set(name === 'xmlns' ? '' : name.slice(6), attribs[name])
        }
      }
      const resolve = (q: string, isAttr: boolean): { ns: string, local: string } => {
        const i = q.indexOf(':')
        if (i < 0) return { ns: isAttr ? '' : (scope.get('') ?? ''), local: q }
        const prefix = q.slice(0, i)
        const ns = scope.get(prefix)
        if (ns === undefined) { failure ??= new XmlSyntaxError(`undeclared namespace prefix "${prefix}" in <${qname}>`, line); return { ns: '', local: q.slice(i + 1) } }
        return { ns, local: q.slice(i + 1) }
      }
      const attrs: XmlAttr[] = []
      for (const name in attribs) {
        if (name === 'xmlns' || name.startsWith('xmlns:')) continue
        const r = resolve(name, true)
        attrs.push({ ns: r.ns, local: r.local, qname: name, value: attribs[name] })
      }
      const r = resolve(qname, false)
      const children: XmlChild[] = []
      const el: XmlElement = { kind: 'element', ns: r.ns, local: r.local, qname, attrs, children, line, scope }
      if (stack.length > 0) stack[stack.length - 1].children.push(el)
      else if (root === undefined) root = el
      else failure ??= new XmlSyntaxError(`a second root element <${qname}>`, line)
      stack.push({ el, children })
    },
    onclosetag (name) {
      const top = stack.pop()
      // htmlparser2 also "closes" tags it merely implies; only a real end tag or `/>` counts in XML.
      const real = text.startsWith(`</${name}`, parser.startIndex) || text.slice(parser.endIndex - 1, parser.endIndex + 1) === '/>'
      if (!real || top === undefined || top.el.qname !== name) {
        failure ??= new XmlSyntaxError(top === undefined ? `stray </${name}>` : `<${top.el.qname}> is not closed`, top?.el.line ?? lineAt(starts, parser.startIndex))
      }
    },
    ontext (data) {
      if (stack.length > 0) stack[stack.length - 1].children.push({ kind: 'text', text: data })
      else if (data.trim() !== '') failure ??= new XmlSyntaxError('text outside the root element', lineAt(starts, parser.startIndex))
    },
    oncomment (data) {
      if (stack.length > 0) stack[stack.length - 1].children.push({ kind: 'comment', text: data })
    }
  }, { xmlMode: true, decodeEntities: true })
  parser.end(text)
  if (failure === undefined && stack.length > 0) failure = new XmlSyntaxError(`<${stack[stack.length - 1].el.qname}> is not closed`, stack[stack.length - 1].el.line)
  if (failure !== undefined) throw failure
  if (root === undefined) throw new XmlSyntaxError('no root element', 1)
  return root
}
