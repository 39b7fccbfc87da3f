/** Rewrites the generated sections of README.md (configuration and error references). */
import { readFileSync, writeFileSync } from 'node:fs'
import { configReference } from '../src/config/reference.ts'
import { errorReference } from '../src/errors-help.ts'

export const generated: Record<string, () => string> = { 'config-reference': configReference, 'error-reference': errorReference }

const file = new URL('../README.md', import.meta.url)
let readme = readFileSync(file, 'utf8')
for (const [name, make] of Object.entries(generated)) {
  const re = new RegExp(`(<!-- ${name}:start[^>]*-->\\n)[\\s\\S]*?(<!-- ${name}:end -->)`)
  readme = readme.replace(re, (_m, a: string, b: string) => a + make() + b)
}
writeFileSync(file, readme)
