/**
 * XPath 1.0 expression parser. Diazo rule files use XPath for `theme`,
 * `content`, `if-content` and `if`; we parse once at compile time into plain
 * data (worker threads receive it by structured clone) and evaluate it over
 * domhandler trees in `xpath.ts`. Anything outside the supported grammar
 * throws a plain Error whose message the rules compiler locates.
 */

export type Axis = 'child' | 'descendant' | 'descendant-or-self' | 'self' | 'parent' | 'ancestor' |
  'ancestor-or-self' | 'following-sibling' | 'preceding-sibling' | 'following' | 'preceding' | 'attribute'

export type NodeTest =
  | { k: 'name', n: string }
  | { k: 'any' }
  | { k: 'text' }
  | { k: 'node' }
  | { k: 'comment' }
  | { k: 'pi' }

export interface Step { axis: Axis, test: NodeTest, preds: XExpr[] }

export type XExpr =
  | { t: 'or' | 'and', a: XExpr, b: XExpr }
  | { t: 'cmp', op: '=' | '!=' | '<' | '<=' | '>' | '>=', a: XExpr, b: XExpr }
  | { t: 'arith', op: '+' | '-' | '*' | 'div' | 'mod', a: XExpr, b: XExpr }
  | { t: 'neg', a: XExpr }
  | { t: 'union', a: XExpr, b: XExpr }
  | { t: 'str', v: string }
  | { t: 'num', v: number }
  | { t: 'var', name: string }
  | { t: 'fn', name: string, args: XExpr[] }
  | { t: 'path', abs: boolean, filter: XExpr | null, fpreds: XExpr[], steps: Step[] }

/** Functions the evaluator implements, with their accepted argument counts. */
export const xpathFunctions: Record<string, [number, number]> = {
  last: [0, 0], position: [0, 0], count: [1, 1], 'local-name': [0, 1], name: [0, 1], string: [0, 1],
  concat: [2, 99], 'starts-with': [2, 2], 'ends-with': [2, 2], contains: [2, 2], 'substring-before': [2, 2],
  'substring-after': [2, 2], substring: [2, 3], 'string-length': [0, 1], 'normalize-space': [0, 1],
  translate: [3, 3], not: [1, 1], true: [0, 0], false: [0, 0], boolean: [1, 1], number: [0, 1], sum: [1, 1],
  floor: [1, 1], ceiling: [1, 1], round: [1, 1], 'lower-case': [1, 1], 'upper-case': [1, 1]
}

const axes = new Set<string>(['child', 'descendant', 'descendant-or-self', 'self', 'parent', 'ancestor',
  'ancestor-or-self', 'following-sibling', 'preceding-sibling', 'following', 'preceding', 'attribute'])

interface Tok { k: 'name' | 'str' | 'num' | 'op' | 'var' | 'eof', v: string }

const tokenRe = /\s*(?:(\d+(?:\.\d*)?|\.\d+)|"([^"]*)"|'([^']*)'|\$([A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)|(\/\/|::|\.\.|!=|<=|>=|[/|+\-=<>()[\],@.*])|([A-Za-z_][\w.-]*(?::(?!:)[A-Za-z_*][\w.-]*)?))/y

function tokenize (src: string): Tok[] {
  const out: Tok[] = []
  tokenRe.lastIndex = 0
  let pos = 0
  while (true) {
    const ws = /\s*/y
    ws.lastIndex = pos
    ws.exec(src)
    if (ws.lastIndex >= src.length) break
    tokenRe.lastIndex = pos
    const m = tokenRe.exec(src)
    if (m === null) throw new Error(`unexpected character ${JSON.stringify(src[ws.lastIndex])} at offset ${ws.lastIndex}`)
    pos = tokenRe.lastIndex
    if (m[1] !== undefined) out.push({ k: 'num', v: m[1] })
    else if (m[2] !== undefined) out.push({ k: 'str', v: m[2] })
    else if (m[3] !== undefined) out.push({ k: 'str', v: m[3] })
    else if (m[4] !== undefined) out.push({ k: 'var', v: m[4] })
    else if (m[5] !== undefined) out.push({ k: 'op', v: m[5] })
    else out.push({ k: 'name', v: m[6] })
  }
  // XPath 1.0 §3.7: `*` and operator names are operators only right after a token that can end an operand.
  for (let i = 0; i < out.length; i++) {
    const tk = out[i]
    const prev = out[i - 1]
    const afterOperand = prev !== undefined && (prev.k !== 'op' || prev.v === ')' || prev.v === ']' || prev.v === '.' || prev.v === '..')
    if (tk.k === 'op' && tk.v === '*') {
      if (!afterOperand) tk.k = 'name'
    } else if (tk.k === 'name' && afterOperand && (tk.v === 'and' || tk.v === 'or' || tk.v === 'div' || tk.v === 'mod')) {
      tk.k = 'op'
    }
  }
  out.push({ k: 'eof', v: '' })
  return out
}

class XPathParser {
  readonly toks: Tok[]
  i = 0
  constructor (src: string) { this.toks = tokenize(src) }

  peek (): Tok { return this.toks[this.i] }
  isOp (v: string): boolean { const t = this.toks[this.i]; return t.k === 'op' && t.v === v }
  eat (v: string): void {
    if (!this.isOp(v)) throw new Error(`expected "${v}" but found ${this.describe()}`)
    this.i++
  }

  describe (): string { const t = this.peek(); return t.k === 'eof' ? 'end of expression' : `"${t.v}"` }

  parse (): XExpr {
    const e = this.or()
    if (this.peek().k !== 'eof') throw new Error(`unexpected ${this.describe()}`)
    return e
  }

  or (): XExpr { let a = this.and(); while (this.isOp('or')) { this.i++; a = { t: 'or', a, b: this.and() } } return a }
  and (): XExpr { let a = this.eq(); while (this.isOp('and')) { this.i++; a = { t: 'and', a, b: this.eq() } } return a }
  eq (): XExpr {
    let a = this.rel()
    while (this.isOp('=') || this.isOp('!=')) { const op = this.toks[this.i++].v as '=' | '!='; a = { t: 'cmp', op, a, b: this.rel() } }
    return a
  }

  rel (): XExpr {
    let a = this.add()
    while (this.isOp('<') || this.isOp('<=') || this.isOp('>') || this.isOp('>=')) {
      const op = this.toks[this.i++].v as '<' | '<=' | '>' | '>='
      a = { t: 'cmp', op, a, b: this.add() }
    }
    return a
  }

  add (): XExpr {
    let a = this.mul()
    while (this.isOp('+') || this.isOp('-')) { const op = this.toks[this.i++].v as '+' | '-'; a = { t: 'arith', op, a, b: this.mul() } }
    return a
  }

  mul (): XExpr {
    let a = this.unary()
    while (this.isOp('*') || this.isOp('div') || this.isOp('mod')) {
      const op = this.toks[this.i++].v as '*' | 'div' | 'mod'
      a = { t: 'arith', op, a, b: this.unary() }
    }
    return a
  }

  unary (): XExpr {
    if (this.isOp('-')) { this.i++; return { t: 'neg', a: this.unary() } }
    return this.union()
  }

  union (): XExpr {
    let a = this.pathExpr()
    while (this.isOp('|')) { this.i++; a = { t: 'union', a, b: this.pathExpr() } }
    return a
  }

  pathExpr (): XExpr {
    const t = this.peek()
    const isFilterStart = t.k === 'str' || t.k === 'num' || t.k === 'var' || (t.k === 'op' && t.v === '(') ||
      (t.k === 'name' && this.toks[this.i + 1].k === 'op' && this.toks[this.i + 1].v === '(' &&
        !['text', 'node', 'comment', 'processing-instruction'].includes(t.v))
    if (isFilterStart) {
      const primary = this.primary()
      const fpreds: XExpr[] = []
      while (this.isOp('[')) fpreds.push(this.pred())
      if (!this.isOp('/') && !this.isOp('//')) {
        return fpreds.length === 0 ? primary : { t: 'path', abs: false, filter: primary, fpreds, steps: [] }
      }
      return { t: 'path', abs: false, filter: primary, fpreds, steps: this.relSteps(true) }
    }
    if (this.isOp('/')) {
      this.i++
      const n = this.peek()
      const startsStep = n.k === 'name' || (n.k === 'op' && (n.v === '@' || n.v === '.' || n.v === '..' || n.v === '*'))
      return { t: 'path', abs: true, filter: null, fpreds: [], steps: startsStep ? this.relSteps(false) : [] }
    }
    if (this.isOp('//')) {
      this.i++
      return { t: 'path', abs: true, filter: null, fpreds: [], steps: [descSelf(), ...this.relSteps(false)] }
    }
    return { t: 'path', abs: false, filter: null, fpreds: [], steps: this.relSteps(false) }
  }

  /** Steps separated by `/` or `//`; `leadingSep` means a separator comes first. */
  relSteps (leadingSep: boolean): Step[] {
    const steps: Step[] = []
    if (!leadingSep) steps.push(this.step())
    while (this.isOp('/') || this.isOp('//')) {
      if (this.toks[this.i++].v === '//') steps.push(descSelf())
      steps.push(this.step())
    }
    return steps
  }

  step (): Step {
    if (this.isOp('.')) { this.i++; return { axis: 'self', test: { k: 'node' }, preds: [] } }
    if (this.isOp('..')) { this.i++; return { axis: 'parent', test: { k: 'node' }, preds: [] } }
    let axis: Axis = 'child'
    if (this.isOp('@')) { this.i++; axis = 'attribute' } else {
      const t = this.peek()
      if (t.k === 'name' && this.toks[this.i + 1].k === 'op' && this.toks[this.i + 1].v === '::') {
        if (!axes.has(t.v)) throw new Error(`unsupported axis "${t.v}"`)
        axis = t.v as Axis
        this.i += 2
      }
    }
    const t = this.peek()
    let test: NodeTest
    if (t.k !== 'name') throw new Error(`expected a node test but found ${this.describe()}`)
    this.i++
    if (t.v === '*') {
      test = { k: 'any' }
    } else if (this.isOp('(')) {
      this.i++
      if (t.v === 'processing-instruction' && this.peek().k === 'str') this.i++
      this.eat(')')
      const tests: Record<string, NodeTest> = { text: { k: 'text' }, node: { k: 'node' }, comment: { k: 'comment' }, 'processing-instruction': { k: 'pi' } }
      const found = tests[t.v]
      if (found === undefined) throw new Error(`unsupported node test "${t.v}()"`)
      test = found
    } else {
      if (t.v.includes(':')) {
        // Namespaced names in rules usually mean XHTML (`xhtml:div`); HTML trees carry no namespace.
        const [prefix, local] = t.v.split(':')
        if (prefix !== 'xhtml' && prefix !== 'html' && prefix !== 'h') throw new Error(`unsupported namespace prefix "${prefix}" in "${t.v}"`)
        test = local === '*' ? { k: 'any' } : { k: 'name', n: local.toLowerCase() }
      } else {
        test = { k: 'name', n: t.v.toLowerCase() }
      }
    }
    const preds: XExpr[] = []
    while (this.isOp('[')) preds.push(this.pred())
    return { axis, test, preds }
  }

  pred (): XExpr { this.eat('['); const e = this.or(); this.eat(']'); return e }

  primary (): XExpr {
    const t = this.toks[this.i++]
    if (t.k === 'str') return { t: 'str', v: t.v }
    if (t.k === 'num') return { t: 'num', v: Number(t.v) }
    if (t.k === 'var') return { t: 'var', name: t.v }
    if (t.k === 'op' && t.v === '(') { const e = this.or(); this.eat(')'); return e }
    if (t.k === 'name') {
      const arity = xpathFunctions[t.v]
      if (arity === undefined) throw new Error(`unsupported function "${t.v}()"`)
      this.eat('(')
      const args: XExpr[] = []
      if (!this.isOp(')')) {
        args.push(this.or())
        while (this.isOp(',')) { this.i++; args.push(this.or()) }
      }
      this.eat(')')
      if (args.length < arity[0] || args.length > arity[1]) throw new Error(`${t.v}() takes ${arity[0]}..${arity[1]} arguments, got ${args.length}`)
      return { t: 'fn', name: t.v, args }
    }
    throw new Error(`unexpected "${t.v}"`)
  }
}

function descSelf (): Step { return { axis: 'descendant-or-self', test: { k: 'node' }, preds: [] } }

/** True when a predicate's value may depend on the context position, so `//x[p]` cannot become `descendant::x[p]`. */
function positional (e: XExpr): boolean {
  switch (e.t) {
    case 'num': case 'arith': case 'neg': case 'var': return true
    case 'fn': return e.name === 'position' || e.name === 'last' || e.name === 'number' || e.name === 'sum' || e.name === 'floor' || e.name === 'ceiling' || e.name === 'round' || e.args.some(positionalInside)
    case 'and': case 'or': case 'cmp': return positionalInside(e.a) || positionalInside(e.b)
    default: return false
  }
}

function positionalInside (e: XExpr): boolean {
  switch (e.t) {
    case 'fn': return e.name === 'position' || e.name === 'last' || e.args.some(positionalInside)
    case 'and': case 'or': case 'cmp': case 'arith': case 'union': return positionalInside(e.a) || positionalInside(e.b)
    case 'neg': return positionalInside(e.a)
    default: return false
  }
}

/** `//x` is `descendant-or-self::node()/child::x`; fold it into one descendant step when positions cannot tell. */
function optimise (e: XExpr): XExpr {
  switch (e.t) {
    case 'path': {
      const steps: Step[] = []
      for (let i = 0; i < e.steps.length; i++) {
        const s = e.steps[i]
        const next = e.steps[i + 1]
        if (s.axis === 'descendant-or-self' && s.test.k === 'node' && s.preds.length === 0 && next !== undefined &&
          next.axis === 'child' && !next.preds.some(positional)) {
          steps.push({ axis: 'descendant', test: next.test, preds: next.preds.map(optimise) })
          i++
        } else steps.push({ axis: s.axis, test: s.test, preds: s.preds.map(optimise) })
      }
      return { t: 'path', abs: e.abs, filter: e.filter === null ? null : optimise(e.filter), fpreds: e.fpreds.map(optimise), steps }
    }
    case 'or': case 'and': return { t: e.t, a: optimise(e.a), b: optimise(e.b) }
    case 'cmp': return { t: 'cmp', op: e.op, a: optimise(e.a), b: optimise(e.b) }
    case 'arith': return { t: 'arith', op: e.op, a: optimise(e.a), b: optimise(e.b) }
    case 'union': return { t: 'union', a: optimise(e.a), b: optimise(e.b) }
    case 'neg': return { t: 'neg', a: optimise(e.a) }
    case 'fn': return { t: 'fn', name: e.name, args: e.args.map(optimise) }
    default: return e
  }
}

/** Parses an XPath 1.0 expression; throws an Error describing the first unsupported or malformed part. */
export function parseXPath (src: string): XExpr {
  if (src.trim() === '') throw new Error('empty XPath expression')
  return optimise(new XPathParser(src).parse())
}

/**
 * A content-side `drop` / `strip` selector is an XSLT match pattern in Diazo, so a relative path (`div[@class='x']`)
 * matches at any depth, as if written `//div[@class='x']`. Absolute paths and other expressions are unchanged.
 */
export function matchAnywhere (e: XExpr): XExpr {
  if (e.t === 'union') return { t: 'union', a: matchAnywhere(e.a), b: matchAnywhere(e.b) }
  if (e.t !== 'path' || e.abs || e.filter !== null || e.steps.length === 0) return e
  const first = e.steps[0].axis
  if (first !== 'child' && first !== 'attribute') return e
  return optimise({ t: 'path', abs: true, filter: null, fpreds: [], steps: [descSelf(), ...e.steps] })
}

/** Names of the variables an expression reads, so undeclared ones fail at compile time. */
export function xpathVariables (e: XExpr, out: Set<string> = new Set()): Set<string> {
  switch (e.t) {
    case 'var': out.add(e.name); break
    case 'or': case 'and': case 'cmp': case 'arith': case 'union': xpathVariables(e.a, out); xpathVariables(e.b, out); break
    case 'neg': xpathVariables(e.a, out); break
    case 'fn': for (const a of e.args) xpathVariables(a, out); break
    case 'path':
      if (e.filter !== null) xpathVariables(e.filter, out)
      for (const p of e.fpreds) xpathVariables(p, out)
      for (const s of e.steps) for (const p of s.preds) xpathVariables(p, out)
      break
  }
  return out
}
