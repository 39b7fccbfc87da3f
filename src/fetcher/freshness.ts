/**
 * Freshness lifetime of a fetched resource (RFC 9111 §4.2.1), as a shared
 * cache computes it: `s-maxage`, then `max-age`, then `Expires - Date`,
 * minus `Age`; `fetch.ttl` when the origin says nothing. The result is never
 * below `fetch.minTtl`, whatever the origin says, so a theme server is asked
 * at most once per `minTtl` per resource. That includes `no-store` and
 * `no-cache`: the gateway needs *some* copy to theme with, and a theme server
 * sending those usually means "changes often", which `minTtl` honours.
 */

export interface FreshnessLimits {
  readonly ttl: number
  readonly minTtl: number
}

/** Lifetime in ms for a response received at `now` with these (lower-case) headers. */
export function freshnessLifetime (headers: Readonly<Record<string, string>>, now: number, limits: FreshnessLimits): number {
  const lifetime = declaredLifetime(headers, now) ?? limits.ttl
  return Math.max(lifetime, limits.minTtl)
}

function declaredLifetime (headers: Readonly<Record<string, string>>, now: number): number | undefined {
  const cc = parseCacheControl(headers['cache-control'])
  if (cc.has('no-store') || cc.has('no-cache')) return 0
  const age = seconds(headers.age) ?? 0
  const maxAge = seconds(cc.get('s-maxage')) ?? seconds(cc.get('max-age'))
  if (maxAge !== undefined) return Math.max(0, maxAge - age) * 1000
  if (headers.expires !== undefined) {
    // An invalid Expires (e.g. "0") means "already expired" (RFC 9111 §5.3).
    const expires = Date.parse(headers.expires)
    if (Number.isNaN(expires)) return 0
    const date = headers.date === undefined ? Number.NaN : Date.parse(headers.date)
    const base = Number.isNaN(date) ? now : date
    return Math.max(0, expires - base - age * 1000)
  }
  return undefined
}

function parseCacheControl (value: string | undefined): Map<string, string> {
  const out = new Map<string, string>()
  if (value === undefined) return out
  for (const part of value.split(',')) {
    const eq = part.indexOf('=')
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase()
    if (name === '') continue
    const raw = eq === -1 ? '' : part.slice(eq + 1).trim()
    out.set(name, raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw)
  }
  return out
}

function seconds (value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined
  return Number(value.trim())
}
