/**
 * Common tag and attribute names, recognised in the source text without
 * slicing it. A sliced name is a fresh string: every Map lookup and every
 * `attribs[name] = v` then hashes and internalises it, which was the largest
 * single cost of building the content tree (docs/rules.md, "Parser choice").
 */
const tagNames = ['a', 'abbr', 'address', 'article', 'aside', 'b', 'blockquote', 'body', 'br', 'button', 'caption', 'cite', 'code',
  'col', 'dd', 'details', 'div', 'dl', 'dt', 'em', 'fieldset', 'figcaption', 'figure', 'footer', 'form', 'h1', 'h2', 'h3', 'h4', 'h5',
  'h6', 'head', 'header', 'hr', 'html', 'i', 'iframe', 'img', 'input', 'label', 'li', 'link', 'main', 'meta', 'nav', 'noscript', 'ol',
  'option', 'p', 'path', 'picture', 'pre', 'script', 'section', 'select', 'small', 'source', 'span', 'strong', 'style', 'sub', 'summary',
  'sup', 'svg', 'table', 'tbody', 'td', 'textarea', 'th', 'thead', 'time', 'title', 'tr', 'u', 'ul']
const attrNames = ['action', 'alt', 'aria-hidden', 'aria-label', 'charset', 'class', 'content', 'd', 'data-id', 'disabled', 'for', 'height',
  'href', 'http-equiv', 'id', 'lang', 'loading', 'media', 'method', 'name', 'placeholder', 'rel', 'role', 'sizes', 'src', 'srcset', 'style',
  'tabindex', 'target', 'title', 'type', 'value', 'viewbox', 'width']

/** Names by length and first character code, so a lookup compares against a handful of candidates at most. */
function table (names: readonly string[]): Array<string[] | undefined> {
  const t: Array<string[] | undefined> = []
  for (const n of names) {
    const k = n.length * 128 + n.charCodeAt(0)
    const l = t[k]
    if (l === undefined) t[k] = [n]; else l.push(n)
  }
  return t
}
const tags = table(tagNames)
const attrs = table(attrNames)

function lookup (t: ReadonlyArray<string[] | undefined>, src: string, start: number, end: number): string {
  const c0 = src.charCodeAt(start)
  const cands = c0 < 128 ? t[(end - start) * 128 + c0] : undefined
  if (cands !== undefined) for (const c of cands) if (src.startsWith(c, start)) return c
  return src.slice(start, end).toLowerCase()
}

/** The lower-cased tag name at `src[start, end)`, shared (not sliced) when it is a common one. */
export function tagName (src: string, start: number, end: number): string { return lookup(tags, src, start, end) }

/** The lower-cased attribute name at `src[start, end)`, shared (not sliced) when it is a common one. */
export function attrName (src: string, start: number, end: number): string { return lookup(attrs, src, start, end) }
