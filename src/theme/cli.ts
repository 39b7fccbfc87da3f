/**
 * `livery theme`: themes one page from the command line, for designers and
 * conformance checks. Exit codes: 0 themed (or notheme), 1 a resource could
 * not be read, 2 bad usage or bad rules (with a located message).
 */
import { hasCode } from '../errors.ts'
import { decodeHtml } from './charset.ts'
import { compile, type Compiled } from './compile.ts'
import { createDefaultLoader } from './loader.ts'
import { displayName, parseRules, toUrl } from './rules.ts'
import { transformCompiled, type TraceRecord } from './transform.ts'

export interface CliIo { stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream }

const usage = `usage: livery theme --rules R --content C [--theme T] [--path P] [--absolute-prefix A] [--param k=v ...] [--trace]

  --rules R            Diazo rules file (path or URL); relative hrefs inside resolve against it
  --content C          content page to theme (path or http(s) URL)
  --theme T            theme page appended as an unconditional <theme> (as Diazo's test runner does)
  --path P             request path for if-path and $path (default: the content URL's path, else /)
  --absolute-prefix A  rewrite theme-relative URLs onto A
  --param k=v          value for $k in if expressions (repeatable)
  --trace              report on stderr what each rule did
`

interface Args { rules?: string, content?: string, theme?: string, path?: string, prefix?: string, params: Record<string, string>, trace: boolean }

function parseArgs (argv: string[]): Args | string {
  const a: Args = { params: {}, trace: false }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const eq = flag.indexOf('=')
    const [name, inline] = flag.startsWith('--') && eq > 0 ? [flag.slice(0, eq), flag.slice(eq + 1)] : [flag, undefined]
    const value = (): string | undefined => inline ?? argv[++i]
    switch (name) {
      case '--trace': a.trace = true; break
      case '--rules': a.rules = value(); break
      case '--content': a.content = value(); break
      case '--theme': a.theme = value(); break
      case '--path': a.path = value(); break
      case '--absolute-prefix': a.prefix = value(); break
      case '--param': {
        const kv = value()
        const j = kv?.indexOf('=') ?? -1
        if (kv === undefined || j <= 0) return `--param needs k=v, got ${JSON.stringify(kv ?? '')}`
        a.params[kv.slice(0, j)] = kv.slice(j + 1)
        break
      }
      case '--help': case '-h': return ''
      default: return `unknown argument ${JSON.stringify(flag)}`
    }
  }
  if (a.rules === undefined || a.rules === '') return '--rules is required'
  if (a.content === undefined || a.content === '') return '--content is required'
  return a
}

function formatTrace (c: Compiled, t: TraceRecord): string {
  const lines: string[] = []
  lines.push(t.theme >= 0 ? `theme: ${c.themes[t.theme].href} (${c.themes[t.theme].where})` : t.notheme >= 0 ? `notheme: ${c.nothemes[t.notheme].where}` : 'no theme applies')
  for (const r of c.rules) {
    const rt = t.rules[r.id]
    const conds = rt === undefined || rt.conds.length === 0 ? '' : ' [' + rt.conds.map(x => `${x.src} ${x.held ? 'held' : 'failed'}`).join('; ') + ']'
    let verdict: string
    const matched = t.theme >= 0 ? c.themes[t.theme].matches[r.id] : 0
    if (r.theme !== null && matched === 0) verdict = `did nothing: theme selector "${r.theme.src}" matched no theme element`
    else if (rt !== undefined && rt.superseded > 0 && rt.applied === 0 && rt.emptyContent === 0) verdict = 'did nothing: an earlier rule of the same if/else chain applied'
    else if (rt === undefined || rt.evaluated === 0) verdict = r.theme === null ? 'did nothing: not evaluated' : 'did nothing: its theme element was dropped or replaced first'
    else if (rt.applied > 0) verdict = `applied ${rt.applied}x` + (rt.emptyContent > 0 ? `, content matched nothing ${rt.emptyContent}x` : '')
    else if (rt.emptyContent > 0) verdict = r.op === 'replace' && !r.themeChildren ? 'applied: content matched nothing, so the theme element was removed' : 'did nothing: content matched nothing'
    else verdict = 'did nothing: a condition failed'
    lines.push(`${r.where}: ${verdict}${conds}`)
  }
  return lines.join('\n') + '\n'
}

export async function runThemeCommand (argv: string[], io: CliIo): Promise<number> {
  const args = parseArgs(argv)
  if (typeof args === 'string') {
    if (args === '') { io.stdout.write(usage); return 0 }
    io.stderr.write(`livery theme: ${args}\n${usage}`)
    return 2
  }
  const loader = createDefaultLoader()
  try {
    const rulesUrl = toUrl(args.rules as string)
    const rs = await parseRules(rulesUrl, async url => (await loader(url)).body.toString('utf8'), { params: Object.keys(args.params) })
    const themeList = args.theme === undefined ? rs.themes : [...rs.themes, { href: toUrl(args.theme), conds: [], where: '--theme' }]
    const themes = await Promise.all(themeList.map(async t => {
      const r = await loader(t.href)
      return { html: decodeHtml(r.body, r.contentType) }
    }))
    const compiled = compile({ ...rs, themes: themeList }, themes, { absolutePrefix: args.prefix, version: 'cli' })
    const contentUrl = toUrl(args.content as string)
    const content = await loader(contentUrl)
    const isHttp = /^https?:/i.test(contentUrl)
    const hrefBodies: Record<string, string> = {}
    for (const href of compiled.hrefs) {
      const abs = href.startsWith('/') ? new URL(href, isHttp ? contentUrl : rulesUrl).href : href
      try { const r = await loader(abs); hrefBodies[href] = decodeHtml(r.body, r.contentType) } catch (err) {
        io.stderr.write(`livery theme: warning: href ${displayName(abs)} is unavailable: ${(err as Error).message}\n`)
      }
    }
    const path = args.path ?? (isHttp ? new URL(contentUrl).pathname : '/')
    const trace: TraceRecord | undefined = args.trace ? { theme: -1, notheme: -1, rules: {} } : undefined
    const out = transformCompiled(compiled, decodeHtml(content.body, content.contentType), { path, params: args.params, hrefBodies, trace })
    if (trace !== undefined) io.stderr.write(formatTrace(compiled, trace))
    if (out.kind === 'html') { io.stdout.write(out.html); return 0 }
    if (out.kind === 'notheme') {
      io.stderr.write('livery theme: no theme applies to this page (notheme or no matching <theme>); writing the content unchanged\n')
      io.stdout.write(content.body)
      return 0
    }
    io.stderr.write(`livery theme: the theme is unavailable: ${out.reason}\n`)
    return 1
  } catch (err) {
    if (hasCode(err, 'LIVERY_ERR_RULES') || hasCode(err, 'LIVERY_ERR_SELECTOR')) {
      io.stderr.write(`livery theme: ${err.message}\n`)
      return 2
    }
    io.stderr.write(`livery theme: ${(err as Error).message}\n`)
    return 1
  }
}
