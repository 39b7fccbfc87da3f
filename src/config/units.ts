/**
 * Durations and sizes as operators write them. Key names carry no unit
 * suffix (DESIGN §8), so the value does: `250ms`, `5s`, `1d`; `256MB`.
 */

const durationUnits: Record<string, number> = {
  ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000,
}

const sizeUnits: Record<string, number> = {
  b: 1, kb: 1024, kib: 1024, k: 1024, mb: 1024 ** 2, mib: 1024 ** 2, m: 1024 ** 2,
  gb: 1024 ** 3, gib: 1024 ** 3, g: 1024 ** 3, tb: 1024 ** 4, tib: 1024 ** 4,
}

/** Milliseconds from `250ms`, `5s`, `1.5m`, `1h`, `1d`, `1w`; `0` alone is allowed. Returns undefined when malformed. */
export function parseDuration (value: unknown): number | undefined {
  if (value === 0 || value === '0') return 0
  if (typeof value !== 'string') return undefined
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$/i.exec(value)
  if (m === null) return undefined
  return Math.round(Number(m[1]) * durationUnits[m[2].toLowerCase()])
}

/** Bytes from `512`, `64KB`, `256MB`, `2GB` (binary multiples). Returns undefined when malformed. */
export function parseSize (value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined
  if (typeof value !== 'string') return undefined
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value)
  if (m === null) return undefined
  const unit = m[2] === '' ? 1 : sizeUnits[m[2].toLowerCase()]
  if (unit === undefined) return undefined
  return Math.round(Number(m[1]) * unit)
}

/** `1500` → `1.5s`: for messages and the README. */
export function formatDuration (ms: number): string {
  if (ms % 86_400_000 === 0 && ms > 0) return `${ms / 86_400_000}d`
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`
  if (ms >= 1000) return `${ms / 1000}s`
  return `${ms}ms`
}

export function formatSize (bytes: number): string {
  for (const [unit, n] of [['GB', 1024 ** 3], ['MB', 1024 ** 2], ['KB', 1024]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`
  }
  return `${bytes}B`
}
