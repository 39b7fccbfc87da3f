/**
 * `LIVERY_*` environment overrides. Every key of the schema has one:
 * `pool.maxConcurrent` → `LIVERY_POOL_MAX_CONCURRENT`, `sites[0].upstream` →
 * `LIVERY_SITES_0_UPSTREAM`. Lists take comma-separated values. An unknown
 * `LIVERY_*` variable is an error for the same reason an unknown YAML key
 * is: a typo must not pass silently. Kubernetes' service-link variables
 * (a Service named `livery` injects LIVERY_SERVICE_HOST, LIVERY_PORT, …)
 * are recognised by name and value shape and ignored.
 */
import { isServiceLink } from './service-links.ts'
import type { Node, ObjectNode } from './schema.ts'
import { isPlainObject } from './validate.ts'

/** Variables that are not configuration keys. */
export const nonConfigEnv: ReadonlySet<string> = new Set(['LIVERY_CONFIG', 'LIVERY_URL', 'LIVERY_WORKER_ID'])

export function envName (path: readonly (string | number)[]): string {
  return 'LIVERY_' + path.map(p => typeof p === 'number' ? String(p) : snake(p)).join('_')
}

function snake (key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()
}

function resolvePath (node: Node, tokens: readonly string[]): (string | number)[] | undefined {
  if (node.t !== 'object') return undefined
  for (const [key, child] of Object.entries(node.fields)) {
    const own = snake(key).split('_')
    if (own.some((t, i) => tokens[i] !== t)) continue
    const rest = tokens.slice(own.length)
    if (child.t === 'object') {
      const sub = resolvePath(child, rest)
      if (sub !== undefined) return [key, ...sub]
    } else if (child.t === 'array') {
      if (rest.length < 2 || !/^\d+$/.test(rest[0])) continue
      const sub = resolvePath(child.of, rest.slice(1))
      if (sub !== undefined) return [key, Number(rest[0]), ...sub]
    } else if (rest.length === 0) {
      return [key]
    }
  }
  return undefined
}

/** Applies overrides to a copy of `raw`; unknown variables become problems. */
export function applyEnv (schema: ObjectNode, raw: Record<string, unknown>, env: NodeJS.ProcessEnv, problems: string[]): Record<string, unknown> {
  const out = structuredClone(raw)
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('LIVERY_') || nonConfigEnv.has(name) || value === undefined) continue
    // Checked before the schema: a Service named livery-admin injects LIVERY_ADMIN_PORT=tcp://…, which is not admin.port.
    if (isServiceLink(name, value)) continue
    const path = resolvePath(schema, name.slice('LIVERY_'.length).split('_'))
    if (path === undefined) {
      problems.push(`${name}: not a configuration variable (see livery --help for the list)`)
      continue
    }
    setPath(out, path, value, problems, name)
  }
  return out
}

function setPath (root: Record<string, unknown>, path: readonly (string | number)[], value: string, problems: string[], name: string): void {
  let cur: unknown = root
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]
    const nextIsIndex = typeof path[i + 1] === 'number'
    const container = cur as Record<string | number, unknown>
    if (container[key] === undefined || container[key] === null) container[key] = nextIsIndex ? [] : {}
    cur = container[key]
    if (nextIsIndex ? !Array.isArray(cur) : !isPlainObject(cur)) {
      problems.push(`${name}: cannot override, the file has a non-${nextIsIndex ? 'list' : 'mapping'} value there`)
      return
    }
  }
  (cur as Record<string | number, unknown>)[path[path.length - 1]] = value
}
