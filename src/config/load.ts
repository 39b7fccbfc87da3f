/**
 * Loads the configuration once: YAML file (or the embedded default), env
 * overrides, schema validation, cross-key checks, deep freeze. Everything
 * after start-up reads the frozen result, never the file or process.env.
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { isIP } from 'node:net'
import { parse as parseYaml } from 'yaml'
import { LiveryError, wrapError } from '../errors.ts'
import { schema } from './schema.ts'
import { applyEnv } from './env.ts'
import { isPlainObject, show, validateNode } from './validate.ts'
import type { Config } from './types.ts'

export interface LoadOptions {
  /** Path of the YAML file; without it only `raw` and env are used. */
  readonly file?: string
  /** An already parsed document (tests, the demo); ignored when `file` is set. */
  readonly raw?: unknown
  /** @default process.env */
  readonly env?: NodeJS.ProcessEnv
  /** Directory for relative paths when there is no file. @default process.cwd() */
  readonly baseDir?: string
}

export function loadConfig (opts: LoadOptions = {}): Config {
  let raw: unknown = opts.raw ?? {}
  let baseDir = opts.baseDir ?? process.cwd()
  if (opts.file !== undefined) {
    const file = resolve(opts.file)
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw wrapError('LIVERY_ERR_CONFIG_FILE', err, file, (err as NodeJS.ErrnoException).code ?? err)
    }
    try {
      raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true }) ?? {}
    } catch (err) {
      throw wrapError('LIVERY_ERR_CONFIG_FILE', err, file, `not valid YAML: ${(err as Error).message}`)
    }
    baseDir = dirname(file)
  }
  return parseConfig(raw, opts.env ?? process.env, baseDir)
}

export function parseConfig (raw: unknown, env: NodeJS.ProcessEnv, baseDir: string): Config {
  const problems: string[] = []
  if (!isPlainObject(raw)) {
    throw new LiveryError('LIVERY_ERR_CONFIG', [`the document is ${show(raw)}, not a mapping of keys`])
  }
  const withEnv = applyEnv(schema, raw, env, problems)
  const config = validateNode(schema, withEnv, '', { baseDir, problems }) as Config
  if (problems.length === 0) crossChecks(config, problems)
  if (problems.length > 0) {
    throw new LiveryError('LIVERY_ERR_CONFIG', ['\n  ' + problems.join('\n  ')])
  }
  return deepFreeze(config)
}

const hostPattern = /^(\*|(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/i

function crossChecks (config: Config, problems: string[]): void {
  const names = new Set<string>()
  const routes = new Set<string>()
  config.sites.forEach((site, i) => {
    if (names.has(site.name)) problems.push(`sites[${i}].name: "${site.name}" is used by an earlier site; names must be unique`)
    names.add(site.name)
    site.hosts.forEach((h, j) => {
      if (!hostPattern.test(h)) problems.push(`sites[${i}].hosts[${j}]: ${show(h)} is not a host name, *.domain or "*"`)
      const route = `${h.toLowerCase()} ${site.pathPrefix}`
      if (routes.has(route)) problems.push(`sites[${i}].hosts[${j}]: ${show(h)} with pathPrefix ${show(site.pathPrefix)} is already routed to an earlier site`)
      routes.add(route)
    })
    if (site.pool.killAfter > site.pool.requestTimeout) {
      problems.push(`sites[${i}].pool.killAfter: must not be longer than requestTimeout`)
    }
  })
  config.trustedProxies.forEach((range, i) => {
    const problem = rangeProblem(range)
    if (problem !== undefined) problems.push(`trustedProxies[${i}]: ${show(range)} ${problem}, such as 10.0.0.0/8, 192.0.2.7 or fd00::/8`)
  })
  config.admin.purgeFrom.forEach((range, i) => {
    const problem = rangeProblem(range)
    if (problem !== undefined) problems.push(`admin.purgeFrom[${i}]: ${show(range)} ${problem}, such as 10.0.0.0/8, 192.0.2.7 or fd00::/8`)
  })
  if (config.fetch.minTtl > config.fetch.ttl) problems.push('fetch.minTtl: must not be longer than fetch.ttl')
  if (config.cache.memory.maxEntrySize > config.cache.memory.maxSize) {
    problems.push('cache.memory.maxEntrySize: must not be larger than cache.memory.maxSize')
  }
}

function rangeProblem (range: string): string | undefined {
  const slash = range.indexOf('/')
  const type = isIP(slash === -1 ? range : range.slice(0, slash))
  if (type === 0) return 'is not an IPv4 or IPv6 address or CIDR range'
  if (slash === -1) return undefined
  const bits = range.slice(slash + 1)
  const max = type === 6 ? 128 : 32
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max ? undefined : `has a prefix length that is not 0–${max}`
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
