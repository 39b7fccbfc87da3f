/**
 * What a CMS's PURGE or BAN request asks for, as the plugins send it:
 *
 * - `PURGE /path` (Plone's plone.cachepurging, WordPress's Proxy Cache Purge
 *   by default, Varnish's `return (purge)`): that one URL.
 * - `PURGE /regex` with `X-Purge-Method: regex` (Proxy Cache Purge's
 *   "purge all" and folder purges, e.g. `/.*`), and a ban: a regex in
 *   `X-Ban-Url` (the header many VCLs read for
 *   `ban("req.http.host == " + req.http.host + " && req.url ~ " + req.http.X-Ban-Url)`).
 *   Node's HTTP parser (llhttp) knows no `BAN` method and answers it 400
 *   before Livery sees it, so a ban comes as `PURGE` with `X-Ban-Url`; a
 *   `BAN` that does reach here is treated the same way.
 *
 * Regular expressions are matched against path and query, anchored at the
 * start as the plugins mean them. Livery's tiers purge by URL prefix, so a
 * regex must be a literal prefix, optionally followed by `.*` (or `$` for
 * one URL); anything else is refused with 400 rather than purged wrongly.
 *
 * The key's scheme is the one the client saw (https behind a TLS proxy); a
 * CMS purges over plain HTTP from inside, so both schemes are purged.
 */
import type { IncomingMessage } from 'node:http'
import { liveryError, type LiveryError } from '../errors.ts'
import type { PurgeSelector } from '../cache/index.ts'

const meta = new Set(['.', '^', '$', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '\\'])

/** A regex as `{ literal, exact }` when it is a literal prefix (exact: anchored with `$`); else undefined. */
export function regexPrefix (regex: string): { literal: string, exact: boolean } | undefined {
  let i = regex.startsWith('^') ? 1 : 0
  let literal = ''
  while (i < regex.length) {
    const c = regex[i]
    if (c === '\\' && i + 1 < regex.length && !/[A-Za-z0-9]/.test(regex[i + 1])) {
      literal += regex[i + 1]
      i += 2
    } else if (!meta.has(c)) {
      literal += c
      i++
    } else break
  }
  const rest = regex.slice(i)
  if (rest === '' || rest === '.*' || rest === '.*$') return { literal, exact: false }
  if (rest === '$') return { literal, exact: true }
  return undefined
}

function header (req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

/** The selector for a PURGE/BAN on `host` (the cache key's host) and `pathAndQuery`. */
export function methodPurgeSelector (req: IncomingMessage, host: string, pathAndQuery: string): PurgeSelector | LiveryError {
  const both = (rest: string): string[] => [`http://${host}${rest}`, `https://${host}${rest}`]
  const banUrl = header(req, 'x-ban-url')
  const isRegex = req.method === 'BAN' || banUrl !== undefined || header(req, 'x-purge-method')?.toLowerCase() === 'regex'
  if (!isRegex) return { urls: both(pathAndQuery) }
  const raw = banUrl ?? pathAndQuery
  let regex: string
  try {
    regex = decodeURIComponent(raw)
  } catch {
    regex = raw
  }
  const prefix = regexPrefix(regex)
  if (prefix === undefined) {
    return liveryError('LIVERY_ERR_PURGE_REQUEST', `the regular expression ${JSON.stringify(regex)} is not a literal prefix such as ^/news/.* or /.*; Livery purges by URL prefix`)
  }
  const path = prefix.literal.startsWith('/') ? prefix.literal : `/${prefix.literal}`
  return prefix.exact ? { urls: both(path) } : { prefixes: both(path) }
}
