/** Rewrites the generated sections of docs/ (configuration and error references). */
import { readFileSync, writeFileSync } from 'node:fs'
import { configReference } from '../src/config/reference.ts'
import { errorReference } from '../src/errors-help.ts'

/** Each generated block, and the document under docs/ that carries it. */
export const generated: Record<string, { file: string, make: () => string }> = {
  'config-reference': { file: 'configuration.md', make: configReference },
  'error-reference': { file: 'errors.md', make: errorReference },
}

for (const [name, { file, make }] of Object.entries(generated)) {
  const url = new URL(`../docs/${file}`, import.meta.url)
  const re = new RegExp(`(<!-- ${name}:start[^>]*-->\\n)[\\s\\S]*?(<!-- ${name}:end -->)`)
  writeFileSync(url, readFileSync(url, 'utf8').replace(re, (_m, a: string, b: string) => a + make() + b))
}
