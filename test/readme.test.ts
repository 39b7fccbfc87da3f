import t from 'tap'
import { readFileSync } from 'node:fs'
import { configReference } from '../src/config/reference.ts'

// The README's configuration reference is generated from the schema; this keeps the two in step.
t.test('README carries the configuration reference generated from the schema', async t => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const m = /<!-- config-reference:start[^>]*-->\n([\s\S]*?)<!-- config-reference:end -->/.exec(readme)
  t.ok(m, 'README has the config-reference markers')
  t.equal(m?.[1], configReference(), 'regenerate with: npm exec -- node scripts/update-readme.ts')
})
