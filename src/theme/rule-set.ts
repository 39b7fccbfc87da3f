/**
 * What parsing a Diazo rules file yields: plain data (rules with their
 * conditions folded in, themes, notheme conditions, variables), which
 * compile.ts turns into a template and the transform threads receive.
 */
import type { Sel } from './select.ts'
import type { XExpr } from './xpath-parse.ts'
import type { Tpl } from './xslt.ts'

export type Cond =
  | { readonly t: 'content', readonly sel: Sel, readonly neg: boolean, readonly src: string }
  | { readonly t: 'path', readonly pats: readonly string[], readonly neg: boolean, readonly src: string }
  | { readonly t: 'expr', readonly ast: XExpr, readonly neg: boolean, readonly src: string }

export type RuleOp = 'replace' | 'before' | 'after' | 'drop' | 'strip' | 'copyattrs' | 'mergeattrs' | 'dropattrs'
export type Method = 'document' | 'raw' | 'ssi' | 'ssiwait' | 'esi'

export interface Rule {
  readonly id: number
  readonly op: RuleOp
  readonly theme: Sel | null
  readonly themeChildren: boolean
  readonly content: Sel | null
  readonly contentChildren: boolean
  /** Diazo 2's `*-content` rules: the content node the content (or inline markup) goes to. */
  readonly toContent: Sel | null
  readonly toContentChildren: boolean
  readonly attributes: readonly string[] | null
  readonly separator: string
  readonly href: string | null
  readonly method: Method
  readonly conds: readonly Cond[]
  readonly inline: string | null
  /**
   * `<include css:content="…"/>` elements inside the inline markup, in order: the markup holds `\u0000<index>\u0000`
   * where each one's content goes (copied as it is in the content, like xsl:copy-of).
   */
  readonly inlineIncludes: readonly InlineInclude[]
  /**
   * Set when the inline body uses XSLT (or attribute value templates): it is then evaluated per request and
   * `inline` is only a marker (''). Null for every other rule, whose markup is `inline` as it stands.
   */
  readonly xsl: readonly Tpl[] | null
  /** For ssi / ssiwait / esi: the URL the include directive names (href as written, plus `;filter_xpath=`). */
  readonly include: string | null
  readonly where: string
}

/** `<xsl:variable name= select="//…">` or `css:select=`: evaluated against each content page. */
export interface DocVar { readonly name: string, readonly sel: Sel, readonly param: boolean }

/** An `<include>` in inline markup: the content it copies, and its own conditions. */
export interface InlineInclude { readonly sel: Sel, readonly children: boolean, readonly conds: readonly Cond[] }

export interface ThemeDef { readonly href: string, readonly conds: readonly Cond[], readonly where: string }
export interface NothemeDef { readonly conds: readonly Cond[], readonly where: string }
export interface RuleSet {
  readonly rules: readonly Rule[]
  /** Top-level `<xsl:variable>` values: fixed, whatever the request's parameters say. */
  readonly constants: Readonly<Record<string, string>>
  /** Top-level `<xsl:param>` defaults: a theme parameter of the same name overrides them. */
  readonly paramDefaults: Readonly<Record<string, string>>
  /** Top-level variables (and params) computed from the content page, in declaration order. */
  readonly docVars: readonly DocVar[]
  readonly themes: readonly ThemeDef[]
  readonly nothemes: readonly NothemeDef[]
  /** Every rules file read, with its text, for versioning. */
  readonly files: ReadonlyArray<{ readonly url: string, readonly text: string }>
}

/** Reads a rules file (or an included one) by absolute URL. */
export type ReadText = (url: string) => Promise<string>

/** Variables every `if` expression may use besides declared parameters (Diazo's defaults). */
export const builtinVariables = ['path', 'url', 'base', 'scheme', 'host']

export interface ParseRulesOptions {
  /** Parameter names `if` expressions may read. */
  readonly params?: readonly string[]
  /** Base for relative `<theme href>`; defaults to the rules file's own URL. */
  readonly themeBase?: string
}
