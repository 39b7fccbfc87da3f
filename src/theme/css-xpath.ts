/**
 * CSS selectors as XPath 1.0 text, in the form Diazo writes them (cssselect's translation with the leading
 * `descendant-or-self::` shortened to `//`). Livery evaluates CSS with css-select; this is only for the
 * `;filter_xpath=` of ESI/SSI includes, which the include's server evaluates.
 */

function literal (v: string): string {
  if (!v.includes("'")) return `'${v}'`
  if (!v.includes('"')) return `"${v}"`
  return `concat(${v.split("'").map(p => `'${p}'`).join(`, "'", `)})`
}

const ident = /^-?[_a-zA-Z\u00a0-\uffff][-\w\u00a0-\uffff]*/

/** One compound selector (`div#x.y[z]`) as `name[cond and cond]`; throws on what it cannot translate. */
function compound (src: string): { xpath: string, rest: string } {
  let s = src
  let name = '*'
  const conds: string[] = []
  const tag = /^(\*|[a-zA-Z][\w-]*)/.exec(s)
  if (tag !== null) { name = tag[1].toLowerCase(); s = s.slice(tag[0].length) }
  for (;;) {
    if (s.startsWith('#')) {
      const m = ident.exec(s.slice(1)); if (m === null) throw new Error('bad id')
      conds.push(`@id = ${literal(m[0])}`); s = s.slice(1 + m[0].length)
    } else if (s.startsWith('.')) {
      const m = ident.exec(s.slice(1)); if (m === null) throw new Error('bad class')
      conds.push(`@class and contains(concat(' ', normalize-space(@class), ' '), ${literal(' ' + m[0] + ' ')})`); s = s.slice(1 + m[0].length)
    } else if (s.startsWith('[')) {
      const m = /^\[\s*([-\w]+)\s*(?:([~|^$*]?=)\s*(?:"([^"]*)"|'([^']*)'|([-\w]+))\s*)?\]/.exec(s)
      if (m === null) throw new Error('bad attribute selector')
      const a = `@${m[1]}`; const v = m[3] ?? m[4] ?? m[5] ?? ''
      switch (m[2]) {
        case undefined: conds.push(a); break
        case '=': conds.push(`${a} = ${literal(v)}`); break
        case '~=': conds.push(`${a} and contains(concat(' ', normalize-space(${a}), ' '), ${literal(' ' + v + ' ')})`); break
        case '^=': conds.push(`${a} and starts-with(${a}, ${literal(v)})`); break
        case '$=': conds.push(`${a} and substring(${a}, string-length(${a})-${v.length - 1}) = ${literal(v)}`); break
        case '*=': conds.push(`${a} and contains(${a}, ${literal(v)})`); break
        case '|=': conds.push(`${a} and (${a} = ${literal(v)} or starts-with(${a}, ${literal(v + '-')}))`); break
      }
      s = s.slice(m[0].length)
    } else break
  }
  if (tag === null && conds.length === 0) throw new Error(`cannot translate "${src}"`)
  const pred = conds.length === 0 ? '' : `[${conds.length === 1 ? conds[0] : conds.map(c => c.includes(' and ') ? `(${c})` : c).join(' and ')}]`
  return { xpath: name + pred, rest: s }
}

/** Translates a CSS selector group; throws an Error naming what it cannot express (pseudo-classes and the like). */
export function cssToXPath (css: string): string {
  return css.split(',').map(group => {
    let s = group.trim()
    if (s === '') throw new Error('empty selector')
    let out = '//'
    for (;;) {
      const c = compound(s)
      out += c.xpath
      s = c.rest
      const comb = /^\s*([>+~])\s*|^\s+/.exec(s)
      if (s === '') break
      if (comb === null) throw new Error(`cannot translate "${s}" in "${group.trim()}" to XPath`)
      s = s.slice(comb[0].length)
      switch (comb[1]) {
        case '>': out += '/'; break
        case '+': out += '/following-sibling::*[1]/self::'; break
        case '~': out += '/following-sibling::'; break
        default: out += '/descendant-or-self::*/'
      }
    }
    return out
  }).join(' | ')
}
