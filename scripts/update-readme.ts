/** Rewrites the generated configuration reference in README.md. */
import { readFileSync, writeFileSync } from 'node:fs'
import { configReference } from '../src/config/reference.ts'

const file = new URL('../README.md', import.meta.url)
const readme = readFileSync(file, 'utf8')
const next = readme.replace(/(<!-- config-reference:start[^>]*-->\n)[\s\S]*?(<!-- config-reference:end -->)/, (_m, a: string, b: string) => a + configReference() + b)
writeFileSync(file, next)
