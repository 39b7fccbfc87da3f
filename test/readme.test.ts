import t from 'tap'
import { readFileSync } from 'node:fs'
import { configReference } from '../src/config/reference.ts'
import { errorReference } from '../src/errors-help.ts'

// The README's reference tables are generated from the code; this keeps them in step.
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
for (const [name, make] of [['config-reference', configReference], ['error-reference', errorReference]] as const) {
  t.test(`README carries the ${name} generated from the code`, async t => {
    const m = new RegExp(`<!-- ${name}:start[^>]*-->\\n([\\s\\S]*?)<!-- ${name}:end -->`).exec(readme)
    t.ok(m, `README has the ${name} markers`)
    t.equal(m?.[1], make(), 'regenerate with: npm exec -- node scripts/update-readme.ts')
  })
}

t.test('every error code is documented in the README', async t => {
  for (const line of errorReference().split('\n').slice(2).filter(Boolean)) {
    const code = /`(LIVERY_ERR_[A-Z_]+)`/.exec(line)?.[1]
    t.ok(code !== undefined && readme.includes(code), `${code} is in the README`)
  }
})
