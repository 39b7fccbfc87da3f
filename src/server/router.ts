/**
 * Site routing: the Host header first (exact name, then the longest
 * matching `*.domain`, then `*`), then the longest matching path prefix
 * among that host's sites. Tables are built once at start-up.
 */
import type { SiteConfig } from '../config/types.ts'

interface Candidate<T> { readonly prefix: string, readonly value: T }

export class SiteRouter<T> {
  readonly #exact = new Map<string, Candidate<T>[]>()
  readonly #wildcards: { suffix: string, candidates: Candidate<T>[] }[] = []
  #any: Candidate<T>[] = []

  constructor (entries: readonly { site: SiteConfig, value: T }[]) {
    for (const { site, value } of entries) {
      const candidate = { prefix: site.pathPrefix, value }
      for (const raw of site.hosts) {
        const host = raw.toLowerCase()
        if (host === '*') this.#any.push(candidate)
        else if (host.startsWith('*.')) {
          const suffix = host.slice(1)
          let w = this.#wildcards.find(x => x.suffix === suffix)
          if (w === undefined) { w = { suffix, candidates: [] }; this.#wildcards.push(w) }
          w.candidates.push(candidate)
        } else {
          const list = this.#exact.get(host) ?? []
          list.push(candidate)
          this.#exact.set(host, list)
        }
      }
    }
    const byPrefix = (a: Candidate<T>, b: Candidate<T>): number => b.prefix.length - a.prefix.length
    for (const list of this.#exact.values()) list.sort(byPrefix)
    for (const w of this.#wildcards) w.candidates.sort(byPrefix)
    this.#wildcards.sort((a, b) => b.suffix.length - a.suffix.length)
    this.#any.sort(byPrefix)
  }

  /** `host` as the client sent it (port and case ignored); `path` without the query. */
  match (host: string | undefined, path: string): T | undefined {
    const name = hostName(host)
    const exact = this.#exact.get(name)
    if (exact !== undefined) {
      const hit = byPath(exact, path)
      if (hit !== undefined) return hit
    }
    for (const w of this.#wildcards) {
      if (name.endsWith(w.suffix) && name.length > w.suffix.length) {
        const hit = byPath(w.candidates, path)
        if (hit !== undefined) return hit
      }
    }
    return byPath(this.#any, path)
  }
}

function byPath<T> (list: readonly Candidate<T>[], path: string): T | undefined {
  for (const c of list) {
    if (c.prefix === '/' || path === c.prefix || path.startsWith(c.prefix.endsWith('/') ? c.prefix : c.prefix + '/')) return c.value
  }
  return undefined
}

/** `Example.ORG:8080` → `example.org`; `[::1]:80` → `[::1]`. */
export function hostName (host: string | undefined): string {
  if (host === undefined) return ''
  const h = host.toLowerCase()
  if (h.startsWith('[')) {
    const end = h.indexOf(']')
    return end === -1 ? h : h.slice(0, end + 1)
  }
  const colon = h.indexOf(':')
  const name = colon === -1 ? h : h.slice(0, colon)
  return name.endsWith('.') ? name.slice(0, -1) : name
}
