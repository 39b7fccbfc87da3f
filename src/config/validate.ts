/**
 * Walks the schema over the raw YAML (with env overrides applied), collecting
 * every problem rather than stopping at the first, so one run of
 * `livery check` shows them all. Each problem names the key path, the bad
 * value and what was expected.
 */
import { resolve } from 'node:path'
import type { ArrayNode, Leaf, Node, ObjectNode } from './schema.ts'
import { parseDuration, parseSize } from './units.ts'

export interface ValidateContext {
  /** Relative `path` values resolve against this directory. */
  readonly baseDir: string
  readonly problems: string[]
}

type Raw = Record<string, unknown>

export function isPlainObject (v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function show (v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (v === undefined) return 'nothing'
  try { return JSON.stringify(v) ?? String(v) } catch { return String(v) }
}

export function validateNode (node: Node, value: unknown, path: string, ctx: ValidateContext): unknown {
  if (node.t === 'object') return validateObject(node, value, path, ctx)
  if (node.t === 'array') return validateArray(node, value, path, ctx)
  return validateLeaf(node, value, path, ctx)
}

function validateObject (node: ObjectNode, value: unknown, path: string, ctx: ValidateContext): unknown {
  if (value === undefined || value === null) {
    if (node.optional === true) return undefined
    value = {}
  }
  if (!isPlainObject(value)) {
    ctx.problems.push(`${path || '(top level)'}: ${show(value)} is not a mapping of keys`)
    return undefined
  }
  const out: Raw = {}
  for (const key of Object.keys(value)) {
    if (!(key in node.fields)) {
      const hint = closest(key, Object.keys(node.fields))
      ctx.problems.push(`${join(path, key)}: unknown key${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`)
    }
  }
  for (const [key, child] of Object.entries(node.fields)) {
    const v = validateNode(child, value[key], join(path, key), ctx)
    if (v !== undefined) out[key] = v
  }
  return out
}

function validateArray (node: ArrayNode, value: unknown, path: string, ctx: ValidateContext): unknown {
  if (value === undefined || value === null) value = []
  if (!Array.isArray(value)) {
    ctx.problems.push(`${path}: ${show(value)} is not a list`)
    return []
  }
  if (node.min !== undefined && value.length < node.min) {
    ctx.problems.push(`${path}: needs at least ${node.min} entr${node.min === 1 ? 'y' : 'ies'}`)
  }
  return value.map((v, i) => validateObject(node.of, v, `${path}[${i}]`, ctx))
}

function validateLeaf (leaf: Leaf, value: unknown, path: string, ctx: ValidateContext): unknown {
  if (value === undefined || value === null) {
    if (leaf.default !== undefined) value = leaf.default
    else if (leaf.optional === true) return undefined
    else {
      ctx.problems.push(`${path}: is required (${leaf.doc})`)
      return undefined
    }
  }
  const bad = (expected: string): undefined => {
    ctx.problems.push(`${path}: ${show(value)} is not ${expected}`)
    return undefined
  }
  switch (leaf.t) {
    case 'string':
    case 'path': {
      if (typeof value !== 'string') return bad('a string')
      if (leaf.pattern !== undefined && !leaf.pattern.test(value)) return bad(leaf.patternDoc ?? `matching ${leaf.pattern}`)
      return leaf.t === 'path' ? resolve(ctx.baseDir, value) : value
    }
    case 'url': {
      if (typeof value !== 'string') return bad('a URL')
      let u: URL
      try { u = new URL(value) } catch { return bad(leaf.patternDoc ?? 'an http(s) URL') }
      if (leaf.pattern !== undefined) return leaf.pattern.test(value) ? value : bad(leaf.patternDoc ?? 'a valid URL')
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return bad('an http(s) URL')
      if (u.search !== '' || u.hash !== '' || u.username !== '') return bad('an http(s) URL without query, fragment or credentials')
      return value.replace(/\/+$/, '')
    }
    case 'int':
    case 'number': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
      if (typeof n !== 'number' || !Number.isFinite(n) || (leaf.t === 'int' && !Number.isInteger(n))) {
        return bad(leaf.t === 'int' ? 'a whole number' : 'a number')
      }
      if (leaf.min !== undefined && n < leaf.min) return bad(`at least ${leaf.min}`)
      if (leaf.max !== undefined && n > leaf.max) return bad(`at most ${leaf.max}`)
      return n
    }
    case 'bool': {
      const b = toBool(value)
      return b === undefined ? bad('true or false') : b
    }
    case 'enum':
      return typeof value === 'string' && leaf.values!.includes(value) ? value : bad(`one of ${leaf.values!.join(', ')}`)
    case 'duration': {
      const ms = parseDuration(value)
      return ms === undefined ? bad('a duration with a unit, such as 250ms, 5s, 10m, 1h or 1d') : ms
    }
    case 'size': {
      const n = parseSize(value)
      return n === undefined ? bad('a size, such as 512, 64KB, 256MB or 2GB') : n
    }
    case 'strings': {
      const list = typeof value === 'string' ? value.split(',').map(s => s.trim()).filter(s => s !== '') : value
      if (!Array.isArray(list) || !list.every(s => typeof s === 'string')) return bad('a list of strings')
      if (leaf.pattern !== undefined && !list.every(s => leaf.pattern!.test(s))) return bad(`a list of ${leaf.patternDoc ?? `strings matching ${leaf.pattern}`}`)
      return list
    }
    case 'access': {
      const b = toBool(value)
      if (b !== undefined) return b
      const n = typeof value === 'string' ? Number(value) : value
      if (typeof n === 'number' && n >= 0 && n <= 1) return n
      return bad('true, false or a sampling rate between 0 and 1')
    }
  }
}

function toBool (v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v
  if (v === 'true' || v === '1' || v === 'yes' || v === 'on') return true
  if (v === 'false' || v === '0' || v === 'no' || v === 'off') return false
  return undefined
}

function join (path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`
}

/** The candidate within edit distance 2, to turn a typo into a suggestion. */
export function closest (word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestD = 3
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase())
    if (d < bestD) { best = c; bestD = d }
  }
  return best
}

function distance (a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return row[b.length]
}
