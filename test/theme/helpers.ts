/** Shared fixtures for theme tests: in-memory rule sets and tree comparison. */
import { parseDocument } from 'htmlparser2'
import type { AnyNode } from 'domhandler'
import { compile, type Compiled } from '../../src/theme/compile.ts'
import { parseRules } from '../../src/theme/rules.ts'
import { transformCompiled, type TransformContext } from '../../src/theme/transform.ts'

export const NS = 'xmlns="http://namespaces.plone.org/diazo" xmlns:css="http://namespaces.plone.org/diazo/css"'

/** Wraps rule markup in a <rules> element with the Diazo namespaces and a theme. */
export function rulesXml (body: string, theme = '<theme href="theme.html"/>'): string {
  return `<rules ${NS}>\n${theme}\n${body}\n</rules>`
}

/** Compiles rules against in-memory files: keys are names relative to file:///mem/. */
export async function compileMem (files: Record<string, string>, opts: { absolutePrefix?: string, params?: string[] } = {}): Promise<Compiled> {
  const read = async (url: string): Promise<string> => {
    const name = url.replace('file:///mem/', '')
    const text = files[name]
    if (text === undefined) throw new Error(`no such file ${name}`)
    return text
  }
  const rs = await parseRules('file:///mem/rules.xml', read, { params: opts.params })
  const themes = await Promise.all(rs.themes.map(async t => ({ html: await read(t.href) })))
  return compile(rs, themes, { absolutePrefix: opts.absolutePrefix, version: 'test' })
}

/** Themes `content` with `rules` (a <rules> body) and `theme`, returning HTML or the outcome kind. */
export async function themeIt (rules: string, theme: string, content: string, ctx: Partial<TransformContext> = {}, extra: Record<string, string> = {}): Promise<string> {
  const c = await compileMem({ 'rules.xml': rulesXml(rules), 'theme.html': theme, ...extra }, { params: Object.keys(ctx.params ?? {}) })
  const out = transformCompiled(c, content, { path: '/', ...ctx })
  return out.kind === 'html' ? out.html : `[${out.kind}]`
}

type Tree = string | [string, Record<string, string>, Tree[]]

function toTree (nodes: AnyNode[]): Tree[] {
  const out: Tree[] = []
  for (const n of nodes) {
    if (n.type === 'text') {
      const t = n.data.replace(/\s+/g, ' ').trim()
      if (t !== '') out.push(t)
    } else if (n.type === 'tag' || n.type === 'script' || n.type === 'style') {
      const attrs: Record<string, string> = {}
      for (const k of Object.keys(n.attribs).sort()) attrs[k] = n.attribs[k].replace(/\s+/g, ' ').trim()
      out.push([n.name, attrs, toTree(n.children)])
    } else if (n.type === 'comment') out.push(`<!--${n.data.trim()}-->`)
  }
  return out
}

/** A whitespace-normalised tree of an HTML string, for structural comparison. */
export function tree (html: string): Tree[] {
  return toTree(parseDocument(html).children)
}

/** The tree of the <body> (or whole document) of a page. */
export function bodyTree (html: string): Tree[] {
  const doc = parseDocument(html)
  const find = (nodes: AnyNode[]): AnyNode | undefined => {
    for (const n of nodes) {
      if (n.type === 'tag' && n.name === 'body') return n
      if ('children' in n) { const f = find(n.children); if (f !== undefined) return f }
    }
    return undefined
  }
  const b = find(doc.children)
  return b !== undefined && 'children' in b ? toTree(b.children) : toTree(doc.children)
}

export const THEME = `<!DOCTYPE html><html><head><title>Theme title</title></head>
<body class="theme"><header id="top"><div id="logo">Logo</div></header>
<nav id="nav"><ul><li>placeholder</li></ul></nav>
<div id="main"><p>Lorem</p></div>
<aside id="side">Side</aside>
<footer id="foot">Theme footer</footer></body></html>`

export const CONTENT = `<html><head><title>Page</title><link rel="stylesheet" href="/cms.css"><meta name="description" content="d"></head>
<body class="page section-news"><nav id="portal-globalnav"><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li></ul></nav>
<main id="content"><h1 class="documentFirstHeading">Page</h1><p class="lead">Lead</p><p class="hidden">Secret</p><div id="related"><a href="/r">R</a></div></main>
<footer id="portal-footer"><p>CMS footer</p></footer></body></html>`

/** Deterministic PRNG (mulberry32) so a failing generated page can be regenerated from its seed. */
export function rng (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
