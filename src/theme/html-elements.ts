/**
 * The HTML element categories the content parser's tree builder consults: per-name
 * parsing rules as bit flags (one Map lookup per tag), the start tags that imply
 * an end tag, SVG's cased names, the insertion modes it keeps, and quirks mode.
 */

const voids = new Set(['area', 'base', 'basefont', 'br', 'col', 'command', 'embed', 'frame', 'hr', 'img', 'input',
  'isindex', 'keygen', 'link', 'meta', 'param', 'source', 'track', 'wbr'])

/*
 * Tree construction follows the HTML standard (§13.2.6) where browsers and libxml2 (Diazo's parser) agree, and
 * libxml2 where they differ, since Diazo themes were written against libxml2's trees: no implied <tbody> or
 * <tr>, no foster parenting, no reconstruction of formatting elements, and an end tag closes every element
 * opened after the element it names. docs/rules.md ("Parser choice") lists the differences from parse5.
 */

/** Start tags that close a <p> in button scope first (HTML §13.2.6.4.7, "close a p element"). */
const closesP = ['address', 'article', 'aside', 'blockquote', 'center', 'details', 'dialog', 'dir', 'div', 'dl', 'fieldset',
  'figcaption', 'figure', 'footer', 'header', 'hgroup', 'main', 'menu', 'nav', 'ol', 'p', 'search', 'section', 'summary', 'ul',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'pre', 'listing', 'form', 'li', 'dd', 'dt', 'plaintext', 'table', 'hr', 'xmp']
/** The "special" category, less the void elements (which are never open). */
const special = ['address', 'applet', 'article', 'aside', 'blockquote', 'body', 'button', 'caption', 'center', 'colgroup', 'dd',
  'details', 'dir', 'div', 'dl', 'dt', 'fieldset', 'figcaption', 'figure', 'footer', 'form', 'frameset', 'h1', 'h2', 'h3', 'h4',
  'h5', 'h6', 'head', 'header', 'hgroup', 'html', 'iframe', 'li', 'listing', 'main', 'marquee', 'menu', 'nav', 'noembed',
  'noframes', 'noscript', 'object', 'ol', 'p', 'plaintext', 'pre', 'script', 'search', 'section', 'select', 'style', 'summary',
  'table', 'tbody', 'td', 'template', 'textarea', 'tfoot', 'th', 'thead', 'title', 'tr', 'ul', 'xmp', 'mi', 'mo', 'mn', 'ms',
  'mtext', 'annotation-xml', 'foreignObject', 'desc']
/** Where a search for a <p> "in button scope" stops. */
const buttonScope = ['applet', 'caption', 'html', 'table', 'td', 'th', 'marquee', 'object', 'template', 'mi', 'mo', 'mn', 'ms',
  'mtext', 'annotation-xml', 'foreignObject', 'desc', 'title', 'button']
/** Elements an end tag of a formatting element runs the (bounded) adoption agency for (§13.2.6.4.7). */
const formatting = ['a', 'b', 'big', 'code', 'em', 'font', 'i', 'nobr', 's', 'small', 'strike', 'strong', 'tt', 'u']
/** Table structure: a cell, row or section start tag closes the open ones up to the nearest of these. */
const tableContext = ['td', 'th', 'tr', 'tbody', 'thead', 'tfoot', 'caption', 'table', 'html', 'template']
const tableStarts = ['td', 'th', 'tr', 'tbody', 'thead', 'tfoot', 'caption', 'colgroup']
/** What the "in head" insertion mode keeps in <head>; any other start tag or text starts the body. */
const headContent = ['base', 'basefont', 'bgsound', 'link', 'meta', 'title', 'noscript', 'noframes', 'style', 'script', 'template']

// Which open elements a start tag closes while they are the current node (the rest of htmlparser2's table).
export const implied = new Map<string, ReadonlySet<string>>()
for (const h of ['h1', 'h2', 'h3', 'h4', 'h5', 'h6']) implied.set(h, new Set(['h1', 'h2', 'h3', 'h4', 'h5', 'h6']))
const formControls = new Set(['input', 'option', 'optgroup', 'select', 'button', 'datalist', 'textarea'])
for (const t of ['select', 'input', 'output', 'button', 'datalist', 'textarea']) implied.set(t, formControls)
implied.set('a', new Set(['a']))
implied.set('option', new Set(['option']))
implied.set('optgroup', new Set(['optgroup', 'option']))
for (const t of ['rt', 'rp']) implied.set(t, new Set(['rt', 'rp']))

export const NONE = 0; export const SVG = 1; export const MATH = 2
/** Elements inside SVG/MathML whose children are HTML again (names already SVG-cased). */
const integration = new Set(['mi', 'mo', 'mn', 'ms', 'mtext', 'annotation-xml', 'foreignObject', 'desc', 'title'])
/** SVG element names are case-sensitive; the tokenizer gives them lower-cased (SVG 1.1 element index). */
export const svgNames = new Map(['altGlyph', 'altGlyphDef', 'altGlyphItem', 'animateColor', 'animateMotion', 'animateTransform',
  'clipPath', 'feBlend', 'feColorMatrix', 'feComponentTransfer', 'feComposite', 'feConvolveMatrix', 'feDiffuseLighting',
  'feDisplacementMap', 'feDistantLight', 'feDropShadow', 'feFlood', 'feFuncA', 'feFuncB', 'feFuncG', 'feFuncR',
  'feGaussianBlur', 'feImage', 'feMerge', 'feMergeNode', 'feMorphology', 'feOffset', 'fePointLight',
  'feSpecularLighting', 'feSpotLight', 'feTile', 'feTurbulence', 'foreignObject', 'glyphRef', 'linearGradient',
  'radialGradient', 'textPath'].map(n => [n.toLowerCase(), n]))

/** Elements whose text the tokenizer reads raw (no entities, no tags) outside foreign content. */
export const rawElements = new Set(['script', 'style', 'xmp', 'iframe', 'noembed', 'noframes', 'plaintext'])
export const rcdataElements = new Set(['title', 'textarea'])
// Per-name parsing rules as bit flags: one Map lookup per tag instead of one per rule.
export const VOID = 1; export const RAW = 2; const RCDATA = 4; export const INTEGRATION = 8; export const IMPLIES = 16; const OTHER = 32; const FOREIGN_ROOT = 64
export const CLOSES_P = 1 << 7; export const SPECIAL = 1 << 8; export const BUTTON_SCOPE = 1 << 9; export const IS_P = 1 << 10; export const IS_LI = 1 << 11
export const IS_DD = 1 << 12; export const TABLE_CONTEXT = 1 << 13; export const TABLE_START = 1 << 14; export const FORMATTING = 1 << 15
export const STRUCTURE = 1 << 16; export const HEAD_CONTENT = 1 << 17; export const LIST_STOP = 1 << 18
export const TEXT_ONLY = RAW | RCDATA
export const FOREIGN_SWITCH = INTEGRATION | FOREIGN_ROOT
export const flags = new Map<string, number>()
const flag = (names: Iterable<string>, f: number): void => { for (const n of names) flags.set(n, (flags.get(n) ?? 0) | f) }
flag(voids, VOID)
flag(rawElements, RAW)
flag(rcdataElements, RCDATA)
flag(integration, INTEGRATION)
flag(implied.keys(), IMPLIES)
flag(['svg', 'math'], FOREIGN_ROOT)
// Elements open() and attach() treat by name: a second form is ignored, a meta may declare a charset.
flag(['form', 'meta'], OTHER)
flag(closesP, CLOSES_P)
flag(special, SPECIAL)
// An open <li> (or <dd>/<dt>) is closed by the next one unless a special element other than these lies between.
flag(special.filter(n => n !== 'address' && n !== 'div' && n !== 'p'), LIST_STOP)
flag(buttonScope, BUTTON_SCOPE)
flag(['p'], IS_P)
flag(['li'], IS_LI)
flag(['dd', 'dt'], IS_DD)
flag(tableContext, TABLE_CONTEXT)
flag(tableStarts, TABLE_START)
flag(formatting, FORMATTING)
flag(['html', 'head', 'body'], STRUCTURE)
flag(headContent, HEAD_CONTENT)

/** How far from the current node the adoption agency looks for the formatting element; beyond it an end tag closes as libxml2's do. */
export const ADOPTION_REACH = 16
/** HTML's own bound on the adoption agency's outer loop. */
export const ADOPTION_ROUNDS = 8

/** Insertion modes (HTML §13.2.4.1), reduced to the ones that place <html>, <head> and <body>. */
export const BEFORE_HTML = 0; export const BEFORE_HEAD = 1; export const IN_HEAD = 2; export const AFTER_HEAD = 3; export const IN_BODY = 4; export const AFTER_BODY = 5
export const AFTER_HTML = 6

/**
 * Public identifiers that put a document in quirks mode (HTML §13.2.6.4.1, the common ones), where a <table>
 * does not close an open <p>. No doctype at all (fragments) is quirks mode too.
 */
const quirkyIds = /^-\/\/(w3c\/\/dtd html [0-3]|w3c\/\/dtd html 4\.0 (transitional|frameset)|w3c\/\/dtd html experimental|w3c\/\/dtd w3 html|w3o\/\/|ietf\/\/|microsoft\/\/|netscape comm\. corp\.\/\/|softquad|spyglass\/\/|sun microsystems corp\.\/\/|webtechs\/\/|as\/\/dtd html 3\.0|advasoft ltd\/\/|o'reilly and associates\/\/|metrius\/\/)/
const quirkyWithoutSystem = /^-\/\/w3c\/\/dtd html 4\.01 (transitional|frameset)\/\//

/** Whether a doctype (its text after `<`, e.g. `!DOCTYPE html`) leaves the document in quirks mode. */
export function quirksDoctype (d: string): boolean {
  const m = /^!doctype\s+([^\s>]+)([^]*)$/i.exec(d)
  if (m === null || m[1].toLowerCase() !== 'html') return true
  const ids = /^\s*public\s*(["'])([^]*?)\1\s*(["'])?/i.exec(m[2])
  if (ids === null) return false
  const pub = ids[2].toLowerCase()
  return quirkyIds.test(pub) || (ids[3] === undefined && quirkyWithoutSystem.test(pub))
}
